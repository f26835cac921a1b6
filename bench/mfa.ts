// npm run bench:mfa [-- --rounds 4 --users 150 --connections 16]
//
// The added cost of the second step: sign-ins per second with TOTP
// (password → 403 mfa_required → mfa-otp grant → tokens) ÷ password-only
// sign-ins per second, in the same run, on one instance and database
// (PGlite, or a database of its own on the server when DATABASE_URL is
// set). Two sets of accounts share one password hash; one set has TOTP. A
// TOTP code is accepted once per 30 s step per account, so each round signs
// every account of a set in once, and the app's movable clock moves one
// step between rounds. Rounds alternate (TOTP, password, password, TOTP…)
// so drift of a shared machine falls on both alike.
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MovableClock } from '../src/clock.js';
import { openTestDatabase, registerAndLogin, startApp, STRONG_PASSWORD, uniqueName, type TestApp } from '../test/helpers.js';
import { codeFor, nextStep } from '../test/totp-codes.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    users: { type: 'string', default: '150' },
    connections: { type: 'string', default: '16' },
  },
});
const ROUNDS = Number(args.rounds);
const USERS = Number(args.users);
const CONNECTIONS = Number(args.connections);
const OTP_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-otp';
const log = (msg: string) => process.stderr.write(`bench:mfa: ${msg}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Signs every account in once with `signIn`, CONNECTIONS at a time; sign-ins per second. */
async function round(names: string[], signIn: (name: string) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < names.length) await signIn(names[next++]!);
    }),
  );
  return names.length / ((performance.now() - t0) / 1000);
}

/** `count` copies of `template` (same password hash; with its sealed TOTP secret when `secret` is given). */
async function cloneUsers(app: TestApp, templateId: string, count: number, secret?: string): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = randomUUID();
    const name = uniqueName(secret ? 'mfa' : 'pwd');
    await app.core.db.query(
      `INSERT INTO users (id, username, email, full_name, password_hash, role, disabled, mfa, created_at, updated_at)
       SELECT $1, $2, $3, NULL, password_hash, role, false, $4, now(), now() FROM users WHERE id = $5`,
      [id, name, `${name}@example.com`, !!secret, templateId],
    );
    if (secret) {
      const sealed = (app.core.totp as unknown as { box: { seal(p: string, o: string): string } }).box.seal(secret, id);
      await app.core.db.query('INSERT INTO mfa_totp (user_id, secret, created_at, confirmed_at) VALUES ($1, $2, now(), now())', [id, sealed]);
    }
    names.push(name);
  }
  return names;
}

async function main() {
  const backend = process.env.DATABASE_URL ? 'postgres' : 'pglite';
  const tdb = await openTestDatabase(backend);
  const clock = new MovableClock();
  const app = await startApp({ db: tdb, clock, env: { RATE_LIMIT_TOKEN_PER_MINUTE: '0', HASH_QUEUE_MAX: '10000' } });
  try {
    const template = await registerAndLogin(app.http, uniqueName('tpl'));
    const e = await app.http.post('/users/me/mfa/totp', { password: template.password }, template.access);
    const secret = e.body.secret as string;
    const mfaUsers = await cloneUsers(app, template.id, USERS, secret);
    const pwdUsers = await cloneUsers(app, template.id, USERS);

    const password = async (name: string) => {
      const r = await app.http.token({ grant_type: 'password', username: name, password: STRONG_PASSWORD });
      if (r.status !== 200) throw new Error(`password sign-in: ${r.status} ${r.text}`);
    };
    const withTotp = async (name: string) => {
      const r = await app.http.token({ grant_type: 'password', username: name, password: STRONG_PASSWORD });
      if (r.status !== 403) throw new Error(`password step: ${r.status} ${r.text}`);
      const done = await app.http.token({ grant_type: OTP_GRANT, mfa_token: r.body.mfa_token, otp: codeFor(secret, clock) });
      if (done.status !== 200) throw new Error(`code step: ${done.status} ${done.text}`);
    };
    // Warm-up: the hashing threads, the prepared statements, the JIT.
    nextStep(clock);
    await round(mfaUsers.slice(0, 20), withTotp);
    await round(pwdUsers.slice(0, 20), password);

    const rates = { totp: [] as number[], password: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      const order = i % 2 === 0 ? (['totp', 'password'] as const) : (['password', 'totp'] as const);
      for (const which of order) {
        nextStep(clock); // a fresh step: every account's code is new
        const rps = which === 'totp' ? await round(mfaUsers, withTotp) : await round(pwdUsers, password);
        rates[which].push(rps);
        log(`round ${i + 1}, ${which}: ${rps.toFixed(1)} sign-ins/s`);
      }
    }
    const paired = rates.totp.map((x, i) => x / rates.password[i]!);
    const out = {
      backend,
      rounds: ROUNDS,
      usersPerSet: USERS,
      connections: CONNECTIONS,
      signInsPerSecond: { totp: rates.totp.map((x) => Math.round(x * 10) / 10), password: rates.password.map((x) => Math.round(x * 10) / 10) },
      median: { totp: median(rates.totp), password: median(rates.password) },
      ratio: Number((median(rates.totp) / median(rates.password)).toFixed(3)),
      pairedRatios: paired.map((x) => Number(x.toFixed(3))),
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } finally {
    await app.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:mfa failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
