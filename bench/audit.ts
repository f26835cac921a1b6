// npm run bench:audit [-- --rounds 5 --seconds 3 --connections 16]
//
// Login throughput with the audit log on ÷ off, in the same run: two
// instances of the service on one database (PGlite, or a database of its own
// on the server when DATABASE_URL is set), one with `audit: false`, measured
// with autocannon in alternating rounds (on, off, on, off…) so that drift of
// a shared machine falls on both alike. Reports each round, the medians and
// their ratio, and the median of each round's own on ÷ off.
import autocannon from 'autocannon';
import { parseArgs } from 'node:util';
import { openTestDatabase, registerUser, startApp, STRONG_PASSWORD, uniqueName, type TestApp } from '../test/helpers.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '16' },
  },
});
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const log = (msg: string) => process.stderr.write(`bench:audit: ${msg}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function loginRate(app: TestApp, username: string): Promise<{ rps: number; errors: number }> {
  const r = await autocannon({
    url: `${app.url}/auth/token`,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password: STRONG_PASSWORD }).toString(),
    duration: SECONDS,
    connections: CONNECTIONS,
  });
  return { rps: r.requests.average, errors: r.errors + r.timeouts + r.non2xx };
}

async function main() {
  const backend = process.env.DATABASE_URL ? 'postgres' : 'pglite';
  const tdb = await openTestDatabase(backend);
  const limits = { RATE_LIMIT_TOKEN_PER_MINUTE: '0', HASH_QUEUE_MAX: '10000' };
  const on = await startApp({ db: tdb, env: limits });
  const off = await startApp({ db: tdb, env: limits, options: { audit: false } });
  try {
    const user = await registerUser(on.http, uniqueName('bench'));
    // Warm-up: the hashing threads, the prepared statements, the JIT.
    await loginRate(on, user.username);
    await loginRate(off, user.username);
    const rates = { on: [] as number[], off: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      // Alternate which goes first, so neither always follows the other.
      const order = i % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
      for (const which of order) {
        const r = await loginRate(which === 'on' ? on : off, user.username);
        if (r.errors) throw new Error(`audit ${which}: ${r.errors} failed logins`);
        rates[which].push(r.rps);
        log(`round ${i + 1}, audit ${which}: ${r.rps.toFixed(1)} logins/s`);
      }
    }
    await on.core.audit.flush();
    const rows = (await tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE type = 'login'`)).rows[0]!.n;
    const ratio = median(rates.on) / median(rates.off);
    // Each round's two runs are neighbours in time: their ratio sees the least drift.
    const paired = rates.on.map((x, i) => x / rates.off[i]!).filter((x) => Number.isFinite(x) && x > 0);
    const out = {
      backend,
      rounds: ROUNDS,
      seconds: SECONDS,
      connections: CONNECTIONS,
      loginsPerSecond: { auditOn: rates.on.map((x) => Math.round(x * 10) / 10), auditOff: rates.off.map((x) => Math.round(x * 10) / 10) },
      median: { auditOn: median(rates.on), auditOff: median(rates.off) },
      ratio: Number(ratio.toFixed(3)),
      pairedRatios: paired.map((x) => Number(x.toFixed(3))),
      pairedRatioMedian: paired.length ? Number(median(paired).toFixed(3)) : null,
      loginEventsWritten: rows,
      dropped: on.core.audit.dropped,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } finally {
    await on.close();
    await off.close();
    await tdb.close();
  }
}

await main();
