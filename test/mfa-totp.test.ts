// Issue 13: TOTP and recovery codes over HTTP, on PGlite and (with
// DATABASE_URL) the PostgreSQL server. Codes are computed here with an
// RFC 6238 implementation of the test's own (test/totp-codes.ts), checked
// against the RFC's SHA-1 vectors first, on the app's movable clock.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MovableClock } from '../src/clock.js';
import { SecretBox } from '../src/auth/secret-box.js';
import { openPostgres } from '../src/db/client.js';
import {
  backends,
  hasServer,
  login,
  makeAdmin,
  openTestDatabase,
  registerAndLogin,
  registerUser,
  startApp,
  TEST_SECRET,
  type LoggedIn,
  type Res,
  type TestApp,
  type TestDatabase,
} from './helpers.js';
import { codeFor, nextStep, totpAt } from './totp-codes.js';

const OTP_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-otp';
const RECOVERY_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-recovery-code';

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

function assertInvalidGrant(r: Res, what = ''): void {
  assert.equal(r.status, 400, `${what}: ${r.text}`);
  assert.equal(r.body.error, 'invalid_grant', `${what}: ${r.text}`);
}

test('the test TOTP matches RFC 6238 Appendix B (SHA-1)', () => {
  const key = Buffer.from('12345678901234567890', 'ascii');
  const vectors: Array<[number, string]> = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ];
  for (const [t, code] of vectors) {
    assert.equal(totpAt(key, t * 1000, 8), code, `T=${t}`);
    assert.equal(totpAt(key, t * 1000, 6), code.slice(2), `T=${t}, 6 digits`);
  }
});

test('sealed secrets: AES-256-GCM bound to their owner, tamper-evident, opened under a previous key after a rotation', () => {
  const owner = '6f1c1d2e-0000-4000-8000-000000000001';
  const old = new SecretBox(['the-previous-secret-key-0123456789abcdef']);
  const sealed = old.seal('JBSWY3DPEHPK3PXP', owner);
  assert.equal(old.open(sealed, owner), 'JBSWY3DPEHPK3PXP');
  assert.notEqual(old.seal('JBSWY3DPEHPK3PXP', owner), sealed, 'a fresh nonce each time');
  assert.throws(() => old.open(sealed, '6f1c1d2e-0000-4000-8000-000000000002'), 'another owner');
  const [v, kid, nonce, body] = sealed.split('.') as [string, string, string, string];
  const flipped = Buffer.from(body, 'base64url');
  flipped[0]! ^= 1;
  assert.throws(() => old.open([v, kid, nonce, flipped.toString('base64url')].join('.'), owner), 'a flipped bit');
  // A different SECRET_KEY alone cannot open it; with the previous one listed it can, and says to reseal.
  assert.throws(() => new SecretBox(['the-current-secret-key-0123456789abcdef']).open(sealed, owner));
  const rotated = new SecretBox(['the-current-secret-key-0123456789abcdef', 'the-previous-secret-key-0123456789abcdef']);
  assert.equal(rotated.open(sealed, owner), 'JBSWY3DPEHPK3PXP');
  assert.equal(rotated.stale(sealed), true);
  assert.equal(rotated.stale(rotated.seal('x', owner)), false);
});

interface MfaUser extends LoggedIn {
  secret: string;
  recovery: string[];
}

/** Registers, signs in, enrolls and confirms TOTP; the clock is then mid-step. */
async function enrolled(app: TestApp): Promise<MfaUser> {
  const u = await registerAndLogin(app.http);
  const e = await app.http.post('/users/me/mfa/totp', { password: u.password }, u.access);
  assert.equal(e.status, 200, e.text);
  nextStep(app.clock);
  const c = await app.http.post('/users/me/mfa/totp/confirm', { code: codeFor(e.body.secret, app.clock) }, u.access);
  assert.equal(c.status, 200, c.text);
  return { ...u, secret: e.body.secret, recovery: c.body.recovery_codes };
}

/** The password step: the 403 mfa_required answer's mfa_token. */
async function passwordStep(app: TestApp, u: { username: string; password: string }, headers?: Record<string, string>): Promise<string> {
  const r = await app.http.token({ grant_type: 'password', username: u.username, password: u.password }, headers);
  assert.equal(r.status, 403, r.text);
  assert.equal(r.body.error, 'mfa_required');
  return r.body.mfa_token as string;
}

const otp = (app: TestApp, mfaToken: string, code: string, headers?: Record<string, string>) =>
  app.http.token({ grant_type: OTP_GRANT, mfa_token: mfaToken, otp: code }, headers);

test('a SECRET_KEY rotation keeps enrolled TOTP working: the service opens secrets under PREVIOUS_SECRET_KEYS, and without it refuses cleanly', async () => {
  const db = await openTestDatabase('pglite');
  const clock = new MovableClock();
  const NEW_SECRET = 'the-rotated-secret-key-0123456789abcdefghij';
  try {
    const before = await startApp({ db, clock });
    const u = await enrolled(before);
    await before.app.close();
    // The new key alone cannot open the secret: the second step fails as a wrong code would, never a 500.
    const lost = await startApp({ db, clock, env: { SECRET_KEY: NEW_SECRET } });
    clock.advance(30_000);
    const r = await otp(lost, await passwordStep(lost, u), codeFor(u.secret, clock));
    assertInvalidGrant(r, 'secret sealed under a key no longer configured');
    await lost.app.close();
    // With the old key listed, the same code step passes.
    const rotated = await startApp({ db, clock, env: { SECRET_KEY: NEW_SECRET, PREVIOUS_SECRET_KEYS: TEST_SECRET } });
    clock.advance(30_000);
    const ok = await otp(rotated, await passwordStep(rotated, u), codeFor(u.secret, clock));
    assert.equal(ok.status, 200, ok.text);
    await rotated.app.close();
  } finally {
    await db.close();
  }
});

for (const backend of backends()) {
  describe(`two-factor authentication (${backend})`, () => {
    let app: TestApp;
    before(async () => {
      app = await startApp({ backend, env: { TRUST_PROXY: '127.0.0.1' } });
    });
    after(async () => app?.close());

    test('enrollment: password re-checked, pending until confirmed, secret sealed at rest, codes shown once', async () => {
      const u = await registerAndLogin(app.http);
      const wrong = await app.http.post('/users/me/mfa/totp', { password: 'not-my-Password-9' }, u.access);
      assert.equal(wrong.status, 400, wrong.text);
      assert.equal(wrong.body.code, 'current_password_incorrect');

      const e = await app.http.post('/users/me/mfa/totp', { password: u.password }, u.access);
      assert.equal(e.status, 200, e.text);
      assert.equal(e.headers.get('cache-control'), 'no-store');
      assert.match(e.body.secret, /^[A-Z2-7]{32}$/);
      const uri = new URL(e.body.otpauth_uri);
      assert.equal(uri.protocol, 'otpauth:');
      assert.equal(uri.host, 'totp');
      assert.equal(uri.searchParams.get('secret'), e.body.secret);
      assert.equal(uri.searchParams.get('algorithm'), 'SHA1');
      assert.equal(uri.searchParams.get('digits'), '6');
      assert.equal(uri.searchParams.get('period'), '30');
      assert.ok(decodeURIComponent(uri.pathname).endsWith(u.username), uri.pathname);
      assert.match(e.body.qr_svg, /^<svg[\s\S]*<\/svg>\s*$/);

      // At rest: neither the secret nor its bytes in clear.
      const row = (await app.core.db.query<{ secret: string }>('SELECT secret FROM mfa_totp WHERE user_id = $1', [u.id])).rows[0]!;
      assert.ok(!row.secret.includes(e.body.secret));
      assert.match(row.secret, /^v1\.[A-Za-z0-9_-]{8}\./);
      // Sealed for this user only: moved to another account it does not open.
      assert.throws(() => app.core.totp['box'].open(row.secret, '00000000-0000-4000-8000-000000000000'));

      // Pending: sign-in unchanged, status off.
      assert.equal((await app.http.token({ grant_type: 'password', username: u.username, password: u.password })).status, 200);
      assert.deepEqual((await app.http.get('/users/me/mfa', u.access)).body, { totp: false, recovery_codes_left: 0, passkeys: 0 });

      nextStep(app.clock);
      const bad = await app.http.post('/users/me/mfa/totp/confirm', { code: codeFor(e.body.secret, app.clock, 3) }, u.access);
      assert.equal(bad.status, 400, bad.text);
      assert.match(bad.headers.get('content-type') ?? '', /problem\+json/);
      assert.equal(bad.body.code, 'mfa_code_invalid');

      const ok = await app.http.post('/users/me/mfa/totp/confirm', { code: codeFor(e.body.secret, app.clock) }, u.access);
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.headers.get('cache-control'), 'no-store');
      const codes = ok.body.recovery_codes as string[];
      assert.equal(codes.length, 10);
      assert.equal(new Set(codes).size, 10);
      for (const c of codes) assert.match(c, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);
      const stored = (await app.core.db.query<{ code_hash: string }>('SELECT code_hash FROM mfa_recovery_codes WHERE user_id = $1', [u.id])).rows;
      assert.equal(stored.length, 10);
      for (const s of stored) assert.ok(!codes.some((c) => s.code_hash.includes(c) || s.code_hash.includes(c.replace(/-/g, ''))));

      assert.deepEqual((await app.http.get('/users/me/mfa', u.access)).body, { totp: true, recovery_codes_left: 10, passkeys: 0 });
      assert.equal((await app.http.get('/users/me', u.access)).body.mfa, true);
      const again = await app.http.post('/users/me/mfa/totp', { password: u.password }, u.access);
      assert.equal(again.status, 409, again.text);
      const reconfirm = await app.http.post('/users/me/mfa/totp/confirm', { code: codeFor(e.body.secret, app.clock, 1) }, u.access);
      assert.equal(reconfirm.status, 409, reconfirm.text);
    });

    test('sign-in: mfa_required after the right password only, then the code; amr and auth_time kept across refreshes', async () => {
      const plain = await registerAndLogin(app.http);
      assert.deepEqual(claims(plain.access).amr, ['pwd']);
      const u = await enrolled(app);

      const r = await app.http.token({ grant_type: 'password', username: u.username, password: u.password });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(Object.keys(r.body).sort(), ['error', 'error_description', 'mfa_methods', 'mfa_token']);
      assert.equal(r.body.error, 'mfa_required');
      assert.deepEqual(r.body.mfa_methods, ['totp', 'recovery_code']);
      assert.equal(typeof r.body.error_description, 'string');
      assert.ok(!('access_token' in r.body));

      nextStep(app.clock);
      const loginAt = Math.floor(app.clock.now() / 1000);
      const done = await otp(app, r.body.mfa_token, codeFor(u.secret, app.clock));
      assert.equal(done.status, 200, done.text);
      assert.equal(done.headers.get('cache-control'), 'no-store');
      const c = claims(done.body.access_token);
      assert.deepEqual(c.amr, ['pwd', 'otp', 'mfa']);
      assert.ok(Math.abs((c.auth_time as number) - loginAt) <= 2);
      assert.equal(c.scope, 'me posts:write');
      assert.equal((await app.http.get('/users/me', done.body.access_token)).status, 200);

      // Spent by its success.
      nextStep(app.clock);
      assertInvalidGrant(await otp(app, r.body.mfa_token, codeFor(u.secret, app.clock)), 'spent mfa_token');

      app.clock.advance(60_000);
      const refreshed = await app.http.token({ grant_type: 'refresh_token', refresh_token: done.body.refresh_token });
      assert.equal(refreshed.status, 200, refreshed.text);
      const rc = claims(refreshed.body.access_token);
      assert.deepEqual(rc.amr, ['pwd', 'otp', 'mfa']);
      assert.equal(rc.auth_time, c.auth_time, 'auth_time is the sign-in, not the refresh');
      assert.ok((rc.iat as number) > (c.iat as number));

      // The scope asked for at the password step is the one granted.
      const narrow = await app.http.token({ grant_type: 'password', username: u.username, password: u.password, scope: 'me' });
      nextStep(app.clock);
      const n = await otp(app, narrow.body.mfa_token, codeFor(u.secret, app.clock));
      assert.equal(n.body.scope, 'me');
    });

    test('codes: ±1 step of drift, never twice, never one older than the last accepted; wrong input is invalid_grant', async () => {
      const u = await enrolled(app);
      // Two steps past the confirmation's (whose code is used up, like any accepted one).
      nextStep(app.clock);
      assertInvalidGrant(await otp(app, await passwordStep(app, u), codeFor(u.secret, app.clock, -1)), "the confirmation's code");
      nextStep(app.clock);
      // A step behind and a step ahead are accepted (each once, in order).
      const behind = await otp(app, await passwordStep(app, u), codeFor(u.secret, app.clock, -1));
      assert.equal(behind.status, 200, `one step behind: ${behind.text}`);
      const now = codeFor(u.secret, app.clock);
      assert.equal((await otp(app, await passwordStep(app, u), now)).status, 200, 'this step');
      assertInvalidGrant(await otp(app, await passwordStep(app, u), now), 'the same code again');
      assertInvalidGrant(await otp(app, await passwordStep(app, u), codeFor(u.secret, app.clock, -1)), 'an older code, after a later one');
      assertInvalidGrant(await otp(app, await passwordStep(app, u), codeFor(u.secret, app.clock, 2)), 'two steps ahead');
      assertInvalidGrant(await otp(app, await passwordStep(app, u), codeFor(u.secret, app.clock, -2)), 'two steps behind');
      const ahead = await otp(app, await passwordStep(app, u), codeFor(u.secret, app.clock, 1));
      assert.equal(ahead.status, 200, `one step ahead: ${ahead.text}`);
      // …after which this step's codes are older than the last accepted.
      assertInvalidGrant(await otp(app, await passwordStep(app, u), codeFor(u.secret, app.clock)), 'this step after the next one');

      // Parallel replays of one fresh code: exactly one wins.
      app.clock.advance(60_000);
      const fresh = codeFor(u.secret, app.clock);
      const tokens = await Promise.all([1, 2, 3, 4].map(() => passwordStep(app, u)));
      const answers = await Promise.all(tokens.map((t) => otp(app, t, fresh)));
      assert.equal(answers.filter((a) => a.status === 200).length, 1, answers.map((a) => a.status).join());

      const t = await passwordStep(app, u);
      for (const bad of ['', 'abcdef', '12345', '1234567', '１２３４５６']) {
        const res = await otp(app, t, bad);
        assert.equal(res.status, 400, res.text);
      }
      assertInvalidGrant(await otp(app, 'ghm_' + 'A'.repeat(43), codeFor(u.secret, app.clock, 1)), 'unknown mfa_token');
      assertInvalidGrant(await otp(app, 'x'.repeat(5000), '123456'), 'garbage mfa_token');
      const missing = await app.http.token({ grant_type: OTP_GRANT, mfa_token: t });
      assert.equal(missing.status, 400);
      assert.equal(missing.body.error, 'invalid_request');
    });

    test('an mfa_token: 5 wrong codes kill it, and it expires after 5 minutes', async () => {
      const u = await enrolled(app);
      nextStep(app.clock);
      const t = await passwordStep(app, u);
      const right = codeFor(u.secret, app.clock);
      const wrong = right === '000000' ? '111111' : '000000';
      for (let i = 0; i < 5; i++) assertInvalidGrant(await otp(app, t, wrong), `wrong code ${i + 1}`);
      assertInvalidGrant(await otp(app, t, right), 'the right code on a dead mfa_token');
      const ok = await otp(app, await passwordStep(app, u), right);
      assert.equal(ok.status, 200, `a new mfa_token still works: ${ok.text}`);

      const late = await passwordStep(app, u);
      app.clock.advance(5 * 60_000 + 1000);
      assertInvalidGrant(await otp(app, late, codeFor(u.secret, app.clock)), 'expired mfa_token');
      const audit = async () => {
        await app.core.audit.flush();
        return (await app.core.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE user_id = $1 AND type = 'mfa_failed'", [u.id])).rows[0]!.n;
      };
      assert.equal(await audit(), 5, 'each wrong code audited');
    });

    test('wrong codes count per account across mfa_tokens: that address is refused, others slowed, a known client never', async () => {
      const limited = await startApp({ backend, env: { TRUST_PROXY: '127.0.0.1', RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT: '5' } });
      try {
        const u = await enrolled(limited);
        const from = (ip: string) => ({ 'x-forwarded-for': ip });
        const home = '198.51.100.7';
        nextStep(limited.clock);
        assert.equal((await otp(limited, await passwordStep(limited, u, from(home)), codeFor(u.secret, limited.clock), from(home))).status, 200, 'home signs in once');
        const attacker = '203.0.113.9';
        const statuses: number[] = [];
        // Three mfa_tokens, a few wrong codes each: more than the limit in all.
        for (let k = 0; k < 3; k++) {
          const t = await passwordStep(limited, u, from(attacker));
          for (let i = 0; i < 3; i++) statuses.push((await otp(limited, t, '000000', from(attacker))).status);
        }
        assert.ok(statuses.slice(0, 5).every((s) => s === 400), statuses.join());
        assert.ok(statuses.slice(5).every((s) => s === 429), `refused after 5 across tokens: ${statuses.join()}`);
        const blocked = await otp(limited, await passwordStep(limited, u, from(attacker)), codeFor(u.secret, limited.clock, 1), from(attacker));
        assert.equal(blocked.status, 429, 'even the right code from that address');
        assert.ok(Number(blocked.headers.get('retry-after')) <= 15 * 60);
        // More wrong codes from other addresses: past the threshold the account is slowed down
        // (the wait starts at 1 s and doubles, so every mfa_token is fetched before the clock runs).
        const addresses = [1, 2, 3, 4, 5, 6].map((a) => `192.0.2.${a}`);
        const pending = await Promise.all(addresses.map((ip) => passwordStep(limited, u, from(ip))));
        const strangerToken = await passwordStep(limited, u, from('192.0.2.200'));
        const spread: Res[] = [];
        for (const [i, ip] of addresses.entries()) spread.push(await otp(limited, pending[i]!, '000000', from(ip)));
        const slowed = spread.find((x) => x.status === 429);
        assert.ok(slowed, spread.map((x) => x.status).join());
        assert.match(slowed.body.detail, /on this account/);
        const stranger = await otp(limited, strangerToken, codeFor(u.secret, limited.clock, 1), from('192.0.2.200'));
        assert.equal(stranger.status, 429, stranger.text);
        assert.ok(Number(stranger.headers.get('retry-after')) <= 15 * 60);
        // …but never for its owner at an address they used before.
        const mine = await otp(limited, await passwordStep(limited, u, from(home)), codeFor(u.secret, limited.clock, 1), from(home));
        assert.equal(mine.status, 200, mine.text);
      } finally {
        await limited.close();
      }
    });

    test('recovery codes: each works once; a new set kills the old; amr after a recovery code', async () => {
      const u = await enrolled(app);
      const code = u.recovery[0]!;
      const use = (t: string, c: string) => app.http.token({ grant_type: RECOVERY_GRANT, mfa_token: t, recovery_code: c });
      // People type them in capitals, without dashes.
      const r = await use(await passwordStep(app, u), code.toUpperCase().replace(/-/g, ''));
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(claims(r.body.access_token).amr, ['pwd', 'otp', 'mfa']);
      assertInvalidGrant(await use(await passwordStep(app, u), code), 'a used recovery code');
      assertInvalidGrant(await use(await passwordStep(app, u), 'aaaa-bbbb-cccc-dddd'), 'not a code of theirs');
      assert.equal((await app.http.get('/users/me/mfa', u.access)).body.recovery_codes_left, 9);
      // Another user's code is not theirs.
      const other = await enrolled(app);
      assertInvalidGrant(await use(await passwordStep(app, u), other.recovery[0]!), "another user's code");

      const bad = await app.http.post('/users/me/mfa/recovery-codes', { code: '000000' }, u.access);
      assert.equal(bad.status, 400, bad.text);
      nextStep(app.clock);
      const fresh = await app.http.post('/users/me/mfa/recovery-codes', { code: codeFor(u.secret, app.clock) }, u.access);
      assert.equal(fresh.status, 200, fresh.text);
      assert.equal(fresh.body.recovery_codes.length, 10);
      assert.equal(fresh.headers.get('cache-control'), 'no-store');
      assertInvalidGrant(await use(await passwordStep(app, u), u.recovery[1]!), 'a code of the old set');
      assert.equal((await use(await passwordStep(app, u), fresh.body.recovery_codes[0])).status, 200);
      assert.equal((await app.http.get('/users/me/mfa', u.access)).body.recovery_codes_left, 9);
    });

    test('disable: needs a code, ends every other session, drops the recovery codes; sign-in is one step again', async () => {
      const u = await enrolled(app);
      nextStep(app.clock);
      const second = await otp(app, await passwordStep(app, u), codeFor(u.secret, app.clock));
      assert.equal(second.status, 200);
      const del = (code: string) => app.http.request('DELETE', '/users/me/mfa/totp', { json: { code }, token: u.access });
      const wrong = await del('000000');
      assert.equal(wrong.status, 400, wrong.text);
      assert.equal(wrong.body.code, 'mfa_code_invalid');
      // A recovery code disables too.
      const gone = await del(u.recovery[3]!);
      assert.equal(gone.status, 204, gone.text);
      assert.equal((await app.http.get('/users/me', second.body.access_token)).status, 401, 'the other session ended');
      assertInvalidGrant(await app.http.token({ grant_type: 'refresh_token', refresh_token: second.body.refresh_token }), 'its refresh token');
      assert.equal((await app.http.get('/users/me', u.access)).status, 200, 'this session kept');
      assert.deepEqual((await app.http.get('/users/me/mfa', u.access)).body, { totp: false, recovery_codes_left: 0, passkeys: 0 });
      assert.equal((await app.http.get('/users/me', u.access)).body.mfa, false);
      const plain = await login(app.http, u.username, u.password);
      assert.deepEqual(claims(plain.access).amr, ['pwd']);
      const again = await del('123456');
      assert.equal(again.status, 409, again.text);
      await app.core.audit.flush();
      const types = (await app.core.db.query<{ type: string }>('SELECT type FROM audit_events WHERE user_id = $1 ORDER BY at, id', [u.id])).rows.map((x) => x.type);
      assert.ok(types.includes('mfa_enabled') && types.includes('mfa_disabled'), types.join());
    });

    test('admin reset: removes the second factors, ends every session, audited; only admins', async () => {
      const admin = await makeAdmin(app, await registerAndLogin(app.http));
      const u = await enrolled(app);
      const notAdmin = await app.http.patch(`/admin/users/${u.id}`, { mfa_reset: true }, u.access);
      assert.equal(notAdmin.status, 403);
      const r = await app.http.patch(`/admin/users/${u.id}`, { mfa_reset: true }, admin.access);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.mfa, false);
      assert.equal((await app.http.get('/users/me', u.access)).status, 401, 'their sessions ended');
      const plain = await login(app.http, u.username, u.password);
      assert.deepEqual((await app.http.get('/users/me/mfa', plain.access)).body, { totp: false, recovery_codes_left: 0, passkeys: 0 });
      await app.core.audit.flush();
      const row = (await app.core.db.query<{ actor_id: string }>("SELECT actor_id FROM audit_events WHERE user_id = $1 AND type = 'mfa_disabled'", [u.id])).rows[0];
      assert.equal(row?.actor_id, admin.id);
    });

    test('the browser endpoint takes the same two steps; the refresh token lands in the cookie', async () => {
      const u = await enrolled(app);
      const page = { 'x-requested-with': 'gatehouse', origin: new URL(app.config.publicUrl).origin };
      const browser = (form: Record<string, string>) => app.http.request('POST', '/auth/browser/token', { form, headers: page });
      const first = await browser({ grant_type: 'password', username: u.username, password: u.password });
      assert.equal(first.status, 403, first.text);
      assert.equal(first.body.error, 'mfa_required');
      assert.deepEqual(first.body.mfa_methods, ['totp', 'recovery_code']);
      assert.equal(first.headers.get('cache-control'), 'no-store');
      assert.equal(first.headers.get('set-cookie'), null);
      nextStep(app.clock);
      const wrong = await browser({ grant_type: OTP_GRANT, mfa_token: first.body.mfa_token, otp: '000000' });
      assert.equal(wrong.status, 400, wrong.text);
      assert.equal(wrong.headers.get('set-cookie'), null);
      const done = await browser({ grant_type: OTP_GRANT, mfa_token: first.body.mfa_token, otp: codeFor(u.secret, app.clock) });
      assert.equal(done.status, 200, done.text);
      assert.deepEqual(claims(done.body.access_token).amr, ['pwd', 'otp', 'mfa']);
      assert.ok(!('refresh_token' in done.body));
      assert.match(done.headers.get('set-cookie') ?? '', /^gh_refresh=ghr_[^;]+;.*HttpOnly/i);
      // Without the page's CSRF headers the second step is refused before anything is spent.
      const t = await passwordStep(app, u);
      const csrf = await app.http.request('POST', '/auth/browser/token', { form: { grant_type: OTP_GRANT, mfa_token: t, otp: codeFor(u.secret, app.clock, 1) } });
      assert.equal(csrf.status, 403, csrf.text);
      assert.equal(csrf.body.code, 'csrf_rejected');
      assert.equal((await otp(app, t, codeFor(u.secret, app.clock, 1))).status, 200, 'the mfa_token was not used up');
    });

    test('/openapi.json documents the second-factor grants, the mfa_required answer and the /users/me/mfa routes', async () => {
      const doc = (await app.http.get('/openapi.json')).body;
      const token = doc.paths['/auth/token'].post;
      assert.match(JSON.stringify(token.requestBody), /mfa-otp/);
      assert.match(JSON.stringify(token.requestBody), /mfa-recovery-code/);
      assert.match(JSON.stringify(token.responses['403']), /mfa_token/);
      assert.match(JSON.stringify(doc.paths['/auth/browser/token'].post.responses['403']), /mfa_methods/);
      for (const [path, method] of [
        ['/users/me/mfa', 'get'],
        ['/users/me/mfa/totp', 'post'],
        ['/users/me/mfa/totp', 'delete'],
        ['/users/me/mfa/totp/confirm', 'post'],
        ['/users/me/mfa/recovery-codes', 'post'],
      ] as const) {
        const op = doc.paths[path]?.[method];
        assert.ok(op, `${method} ${path}`);
        assert.ok(op.responses['401'] && op.security, `${method} ${path} is protected`);
      }
      assert.match(JSON.stringify(doc.paths['/admin/users/{id}'].patch.requestBody), /mfa_reset/);
    });

    test('a wrong password answers the same for an account with TOTP as for one without', async () => {
      const withMfa = await enrolled(app);
      const without = await registerUser(app.http);
      const a = await app.http.token({ grant_type: 'password', username: withMfa.username, password: 'wrong-Password-1' });
      const b = await app.http.token({ grant_type: 'password', username: without.username, password: 'wrong-Password-1' });
      assert.equal(a.status, 400);
      assert.equal(a.status, b.status);
      assert.equal(a.text, b.text);
      assert.deepEqual([...a.headers.keys()].filter((k) => k !== 'date').sort(), [...b.headers.keys()].filter((k) => k !== 'date').sort());
    });
  });
}

describe('an mfa_token made on one node is finished on another (PostgreSQL server)', { skip: !hasServer() && 'needs DATABASE_URL' }, () => {
  let tdb: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  before(async () => {
    tdb = await openTestDatabase('postgres');
    const poolB = await openPostgres(tdb.url!);
    const clock = new MovableClock();
    a = await startApp({ db: tdb, clock });
    b = await startApp({ db: { db: poolB, url: tdb.url, close: () => poolB.close() }, clock });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await tdb?.close();
  });

  test('password on A, code on B; the spent token and the used step are refused on A', async () => {
    const u = await enrolled(a);
    nextStep(a.clock);
    const t = await passwordStep(a, u);
    const code = codeFor(u.secret, a.clock);
    const done = await otp(b, t, code);
    assert.equal(done.status, 200, done.text);
    assert.deepEqual(claims(done.body.access_token).amr, ['pwd', 'otp', 'mfa']);
    assertInvalidGrant(await otp(a, t, codeFor(u.secret, a.clock, 1)), 'spent on B');
    assertInvalidGrant(await otp(a, await passwordStep(b, u), code), 'the code used on B, replayed on A');
    // Wrong codes on either node count against one mfa_token.
    const t2 = await passwordStep(a, u);
    for (let i = 0; i < 5; i++) assertInvalidGrant(await otp(i % 2 ? a : b, t2, '000000'), `wrong ${i + 1}`);
    assertInvalidGrant(await otp(b, t2, codeFor(u.secret, a.clock, 1)), 'killed across nodes');
  });
});
