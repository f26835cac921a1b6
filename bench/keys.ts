// npm run bench:keys [-- --duration S --connections C]
//
// What each signing algorithm costs, in one run (the machine is shared:
// compare within a run, not across runs):
//   1. in-process: µs per sign and per verify (TokenService, as the token
//      endpoint and the guard use it; verify on distinct tokens, so the
//      verified-token cache never answers);
//   2. GET /users/me req/s against the real service process (tsx
//      src/server.ts, embedded database) per algorithm, as a ratio to HS256:
//      once with one token (the cache answers after the first request, as for
//      a client reusing its token) and once cycling through more distinct
//      tokens than the cache holds (every request pays the signature check).
// The service is given a private key (JWT_PRIVATE_KEY) so that the bench can
// mint those distinct tokens itself, with the claims of a real login.
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createSigner } from 'fast-jwt';
import { ALGORITHMS, type JwtAlgorithm } from '../src/auth/algorithms.js';
import { KeyRing } from '../src/auth/key-ring.js';
import { asymmetricKey, generatePrivateKey, hmacKey, type SigningKey } from '../src/auth/keys.js';
import { TokenService } from '../src/auth/tokens.js';
import { systemClock } from '../src/clock.js';
import { HttpClient } from '../test/http-client.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '4' },
    connections: { type: 'string', default: '10' },
  },
});
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
/** More distinct tokens than the verifier's cache (10 000) holds: cycled, each request misses. */
const POOL = 12_000;
const PASSWORD = 'bench-Anchor-47-velvet';
const SECRET = randomBytes(32).toString('base64url');
const log = (msg: string) => process.stderr.write(`bench:keys: ${msg}\n`);

async function keyFor(algorithm: JwtAlgorithm): Promise<{ key: SigningKey; pem?: string }> {
  if (algorithm === 'HS256') return { key: hmacKey(SECRET, true) };
  const privateKey = generatePrivateKey(algorithm);
  return { key: await asymmetricKey(algorithm, privateKey), pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

function time(n: number, fn: (i: number) => void): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - start) / 1000 / n;
}

/** µs per sign and per verify: the best of 3 rounds (the machine is shared: the best round has the least interference). */
function inProcess(key: SigningKey): { sign: number; verify: number } {
  const rounds = [0, 1, 2].map(() => inProcessRound(key));
  return { sign: Math.min(...rounds.map((r) => r.sign)), verify: Math.min(...rounds.map((r) => r.verify)) };
}

function inProcessRound(key: SigningKey): { sign: number; verify: number } {
  const tokens = new TokenService({
    keys: new KeyRing(() => Infinity, [key]),
    issuer: 'https://bench.example',
    audience: 'gatehouse',
    accessTtlSeconds: 900,
    leewaySeconds: 30,
    clientId: 'gatehouse',
    clock: systemClock,
  });
  const grant = { sub: randomUUID(), sid: randomUUID(), scope: 'me posts:write', username: 'bench', authTime: Date.now(), amr: ['pwd'] };
  const n = key.algorithm === 'RS256' ? 500 : 3000;
  time(500, () => tokens.verify(tokens.issue(grant).token)); // warm up
  const issued: string[] = [];
  const sign = time(n, () => issued.push(tokens.issue(grant).token));
  const verify = time(n, (i) => tokens.verify(issued[i]!));
  return { sign, verify };
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function withService<T>(algorithm: JwtAlgorithm, pem: string | undefined, fn: (base: string) => Promise<T>): Promise<T> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-keys-'));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    NODE_ENV: 'development',
    SECRET_KEY: SECRET,
    ALGORITHM: algorithm,
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    HSTS: 'false',
    RATE_LIMIT_TOKEN_PER_MINUTE: '0',
    RATE_LIMIT_REGISTER_PER_HOUR: '0',
    RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT: '0',
  };
  if (pem) env.JWT_PRIVATE_KEY = pem;
  const server: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        if ((await fetch(`${base}/ready`)).ok) break;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline || server.exitCode !== null) throw new Error('the service did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    return await fn(base);
  } finally {
    if (server.exitCode === null) {
      const ended = new Promise((r) => server.once('close', r));
      server.kill('SIGTERM');
      await ended;
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function overHttp(algorithm: JwtAlgorithm, key: SigningKey, pem: string | undefined) {
  return withService(algorithm, pem, async (base) => {
    const http = new HttpClient(base);
    const username = `bench_${algorithm.toLowerCase()}`;
    await http.post('/auth/register', { username, email: `${username}@example.com`, password: PASSWORD });
    const t = await http.token({ grant_type: 'password', username, password: PASSWORD });
    if (t.status !== 200) throw new Error(`login failed: ${t.text}`);
    const access = t.body.access_token as string;
    // Distinct tokens with the login's claims (fresh jti), signed with the service's own key.
    const claims = JSON.parse(Buffer.from(access.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    const sign = createSigner({ key: key.signKey, algorithm, kid: key.kid, header: { alg: algorithm, typ: 'at+jwt' } });
    const pool = Array.from({ length: POOL }, () => sign({ ...claims, jti: randomUUID() }));
    let next = 0;
    const run = (opts: Partial<autocannon.Options>) =>
      autocannon({ url: `${base}/users/me`, duration: DURATION, connections: CONNECTIONS, ...opts } as autocannon.Options);
    await run({ duration: 1, headers: { authorization: `Bearer ${access}` } }); // warm up
    const cached = await run({ headers: { authorization: `Bearer ${access}` } });
    const distinct = await run({
      requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${pool[next++ % POOL]}` } }) }],
    });
    const bad = (r: autocannon.Result) => r.errors + r.timeouts + r.non2xx;
    if (bad(cached) || bad(distinct)) log(`${algorithm}: ${bad(cached)} + ${bad(distinct)} failed requests`);
    return { cached: Math.round(cached.requests.average), distinct: Math.round(distinct.requests.average) };
  });
}

const results: Array<{ algorithm: JwtAlgorithm; sign: number; verify: number; cached: number; distinct: number }> = [];
const keys = await Promise.all(ALGORITHMS.map(keyFor));
for (const { key } of keys) inProcessRound(key); // the shared code warmed up before any figure is taken
for (const [i, algorithm] of ALGORITHMS.entries()) {
  const { key, pem } = keys[i]!;
  const micro = inProcess(key);
  log(`${algorithm}: sign ${micro.sign.toFixed(1)} µs, verify ${micro.verify.toFixed(1)} µs; GET /users/me…`);
  results.push({ algorithm, ...micro, ...(await overHttp(algorithm, key, pem)) });
}

const hs = results[0]!;
const ratio = (a: number, b: number) => (a / b).toFixed(2);
process.stdout.write(
  [
    `GET /users/me: ${DURATION} s, ${CONNECTIONS} connections, embedded database, one process; ratios to HS256 in this run`,
    '',
    '| algorithm | sign µs | verify µs | /users/me req/s (one token, cached) | ratio | /users/me req/s (distinct tokens) | ratio |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r) =>
        `| ${r.algorithm} | ${r.sign.toFixed(1)} | ${r.verify.toFixed(1)} | ${r.cached} | ${ratio(r.cached, hs.cached)} | ${r.distinct} | ${ratio(r.distinct, hs.distinct)} |`,
    ),
    '',
  ].join('\n'),
);
