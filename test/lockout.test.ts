// The account limits cannot be turned into a lockout (issue 9, finding 2).
// An attacker fails eleven times on erin's account from each of ten
// addresses: each of those addresses is refused, the account is slowed
// down (never for more than 15 minutes), and erin, signing in from an
// address she used before, is never refused. Per-IP limits count an IPv6
// client by its /64, so rotating addresses inside one's own prefix does
// not dodge them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ipKey } from '../src/auth/rate-limit.js';
import { registerUser, startApp, type TestApp } from './helpers.js';

const from = (ip: string) => ({ 'x-forwarded-for': ip });

describe('no lockout by failed logins', () => {
  let app: TestApp;
  let erin: { username: string; password: string };

  before(async () => {
    app = await startApp({ env: { TRUST_PROXY: '127.0.0.1', RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT: '10' } });
    erin = await registerUser(app.http);
  });
  after(async () => app.close());

  const attempt = (password: string, ip: string) => app.http.token({ grant_type: 'password', username: erin.username, password }, from(ip));

  test("eleven wrong passwords from each of ten addresses: those addresses are refused, erin's known address never", async () => {
    const home = '198.51.100.10';
    assert.equal((await attempt(erin.password, home)).status, 200, 'erin signs in from home once');
    const waits: number[] = [];
    for (let a = 1; a <= 10; a++) {
      for (let i = 0; i < 11; i++) {
        const r = await attempt(`wrong-Guess-${a}-${i}`, `203.0.113.${a}`);
        assert.ok(r.status === 400 || r.status === 429, r.text);
        if (r.status === 429) waits.push(Number(r.headers.get('retry-after')));
      }
    }
    // Past the threshold the attacker is slowed down, never for more than 15 minutes.
    assert.ok(waits.length > 0, 'the attack was slowed down');
    assert.ok(waits.every((w) => w >= 1 && w <= 15 * 60), `Retry-After values: ${waits}`);
    // The attacker's addresses are refused, for a bounded time.
    const attacker = await attempt(erin.password, '203.0.113.1');
    assert.equal(attacker.status, 429);
    assert.ok(Number(attacker.headers.get('retry-after')) <= 15 * 60);
    // Erin from her usual address: signed in, as if nothing happened.
    const ok = await attempt(erin.password, home);
    assert.equal(ok.status, 200, ok.text);
    // From an address the account has never seen: slowed down, never for a day.
    const stranger = await attempt(erin.password, '192.0.2.77');
    assert.equal(stranger.status, 429, stranger.text);
    const wait = Number(stranger.headers.get('retry-after'));
    assert.ok(wait >= 1 && wait <= 15 * 60, `Retry-After ${wait} s is at most 15 min`);
  });

  test('IPv6 clients are limited by their /64', async () => {
    assert.equal(ipKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(ipKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(ipKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(ipKey('::1'), '0:0:0:0::/64');
    assert.equal(ipKey('::ffff:192.0.2.5'), '192.0.2.5');
    assert.equal(ipKey('192.0.2.5'), '192.0.2.5');
    const limited = await startApp({ env: { TRUST_PROXY: '127.0.0.1', RATE_LIMIT_TOKEN_PER_MINUTE: '3' } });
    try {
      const statuses: number[] = [];
      for (let i = 1; i <= 4; i++) {
        const r = await limited.http.token({ grant_type: 'refresh_token', refresh_token: 'ghr_x' }, from(`2001:db8:7:7:${i}::${i}`));
        statuses.push(r.status);
      }
      assert.deepEqual(statuses, [400, 400, 400, 429], 'four addresses of one /64 share one budget');
      const other = await limited.http.token({ grant_type: 'refresh_token', refresh_token: 'ghr_x' }, from('2001:db8:7:8::1'));
      assert.equal(other.status, 400, 'the next /64 has its own');
    } finally {
      await limited.close();
    }
  });
});
