// The auth core below HTTP: the grant functions on an in-memory PostgreSQL
// (PGlite) with a clock the test moves, the error renderer's mapping, the
// users repository's cache invalidation and the event bus's validation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { createAuthCore, type AuthCore } from '../src/auth/core.js';
import { AuthError, ERROR_CODES, type ErrorCode } from '../src/auth/errors.js';
import { parseEvent } from '../src/auth/event-bus.js';
import { resolveOptions } from '../src/auth/options.js';
import { ARGON2_PARAMS } from '../src/auth/passwords.js';
import { MovableClock } from '../src/clock.js';
import { problemBody, toAuthError } from '../src/http/render.js';
import { openTestDatabase, STRONG_PASSWORD, TEST_SECRET, uniqueName, type TestDatabase } from './helpers.js';
import { hash as argonHash } from '@node-rs/argon2';

const META = { ip: '192.0.2.1', userAgent: 'unit' };
const codeOf = (code: ErrorCode) => (err: unknown) => err instanceof AuthError && err.code === code;

describe('grants, on PGlite with a movable clock', () => {
  let tdb: TestDatabase;
  let core: AuthCore;
  const clock = new MovableClock();

  before(async () => {
    tdb = await openTestDatabase('pglite');
    const options = resolveOptions({ database: tdb.db, secretKey: TEST_SECRET, clock, refreshGraceSeconds: 10, refreshTokenTtlSeconds: 3600 });
    core = await createAuthCore(options, tdb.db, pino({ level: 'silent' }));
    await core.start();
  });
  after(async () => {
    await core.close();
    await tdb.close();
  });

  async function newUser(passwordHash?: string) {
    const username = uniqueName('unit');
    return core.users.create({
      username,
      email: `${username}@example.com`,
      fullName: null,
      passwordHash: passwordHash ?? (await core.hasher.hash(STRONG_PASSWORD)),
      role: 'user',
    });
  }

  test('password grant: tokens for the right password; one code for every wrong credential', async () => {
    const u = await newUser();
    const t = await core.grants.password({ username: u.username, password: STRONG_PASSWORD }, META);
    assert.equal(t.scope, 'me');
    assert.equal(core.tokens.verify(t.access_token).sub, u.id);
    await assert.rejects(core.grants.password({ username: u.username, password: 'nope-Nope-1' }, META), codeOf('invalid_credentials'));
    await assert.rejects(core.grants.password({ username: 'nobody-here', password: STRONG_PASSWORD }, META), codeOf('invalid_credentials'));
    await core.users.change(u.id, { disabled: true });
    await assert.rejects(core.grants.password({ username: u.username, password: STRONG_PASSWORD }, META), codeOf('invalid_credentials'));
    await assert.rejects(core.grants.password({ username: u.username, password: STRONG_PASSWORD, scope: 'me bogus' }, META), codeOf('invalid_scope'));
  });

  test('refresh grant: rotation, a retry inside the grace window, then reuse, expiry and revocation codes', async () => {
    const u = await newUser();
    const first = await core.grants.password({ username: u.username, password: STRONG_PASSWORD }, META);
    const second = await core.grants.refresh({ refreshToken: first.refresh_token }, META);
    assert.notEqual(second.refresh_token, first.refresh_token);
    const retry = await core.grants.refresh({ refreshToken: first.refresh_token }, META);
    assert.equal(retry.refresh_token, second.refresh_token, 'a retry gets the same successor');
    clock.advance(11_000);
    await assert.rejects(core.grants.refresh({ refreshToken: first.refresh_token }, META), codeOf('refresh_token_reused'));
    await assert.rejects(core.grants.refresh({ refreshToken: second.refresh_token }, META), codeOf('session_revoked'));

    const other = await core.grants.password({ username: u.username, password: STRONG_PASSWORD }, META);
    clock.advance(3601_000);
    await assert.rejects(core.grants.refresh({ refreshToken: other.refresh_token }, META), codeOf('refresh_token_expired'));
    await assert.rejects(core.grants.refresh({ refreshToken: 'ghr_not-a-token' }, META), codeOf('refresh_token_invalid'));
  });

  test('a hash upgrade that cannot run (hashing queue full) never fails the login', async () => {
    const weak = await argonHash(STRONG_PASSWORD, { ...ARGON2_PARAMS, memoryCost: 8192 });
    const u = await newUser(weak);
    const realHash = core.hasher.hash.bind(core.hasher);
    core.hasher.hash = () => Promise.reject(Object.assign(new Error('work queue full'), { name: 'QueueFullError' }));
    try {
      const t = await core.grants.password({ username: u.username, password: STRONG_PASSWORD }, META);
      assert.equal(t.token_type, 'bearer');
    } finally {
      core.hasher.hash = realHash;
    }
    assert.equal((await core.users.findById(u.id))?.password_hash, weak, 'postponed: still the old hash');
    await core.grants.password({ username: u.username, password: STRONG_PASSWORD }, META);
    assert.notEqual((await core.users.findById(u.id))?.password_hash, weak, 'upgraded at the next login');
  });

  test('every write through the users repository forgets the cached user state', async () => {
    const u = await newUser();
    const cached = async () => (await core.userStates.get(u.id)).profile;
    assert.equal((await cached())?.full_name, null);
    await core.users.updateProfile(u.id, { fullName: 'Ada' });
    assert.equal((await cached())?.full_name, 'Ada');
    await core.users.change(u.id, { disabled: true });
    assert.equal((await core.userStates.get(u.id)).disabled, true);
    await core.users.change(u.id, { disabled: false, role: 'admin' });
    assert.equal((await core.userStates.get(u.id)).role, 'admin');
    // A write behind the repository's back is not seen: the cache is what the repository keeps true.
    await tdb.db.query(`UPDATE users SET full_name = 'behind' WHERE id = $1`, [u.id]);
    assert.equal((await cached())?.full_name, 'Ada');
  });
});

describe('the error renderer', () => {
  test('every code renders with its status, its code and (on OAuth routes) its RFC 6749 error', () => {
    for (const [code, spec] of Object.entries(ERROR_CODES) as Array<[ErrorCode, (typeof ERROR_CODES)[ErrorCode]]>) {
      const body = problemBody(spec.status, 'why', code);
      assert.equal(body.status, spec.status);
      assert.equal(body.code, code);
      assert.equal(typeof body.title, 'string');
    }
    assert.equal(ERROR_CODES.invalid_credentials.oauth, 'invalid_grant');
    assert.equal(ERROR_CODES.refresh_token_reused.oauth, 'invalid_grant');
  });

  test('internal errors never leak: SQL, drivers and bugs map to codes with fixed words', () => {
    const sql = toAuthError(Object.assign(new Error('relation "users" does not exist'), { code: '42P01' }));
    assert.equal(sql.err.code, 'internal_error');
    assert.doesNotMatch(sql.err.detail, /relation|users/);
    assert.equal(sql.fault, 'bug');
    const down = toAuthError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
    assert.equal(down.err.code, 'store_unavailable');
    assert.equal(down.err.status, 503);
    assert.doesNotMatch(down.err.detail, /5432/);
    const nul = toAuthError(Object.assign(new Error('invalid byte sequence'), { code: '22021' }));
    assert.equal(nul.err.status, 400);
    const busy = toAuthError(Object.assign(new Error('work queue full'), { name: 'QueueFullError' }));
    assert.equal(busy.err.code, 'busy');
    assert.equal(busy.err.extra.headers?.['retry-after'], '1');
    const mine = new AuthError('rate_limited', 'slow down');
    assert.equal(toAuthError(mine).err, mine);
  });
});

describe('event validation', () => {
  const id = '0b8f5c1e-2d4a-4f6b-9c8d-7e6f5a4b3c2d';
  test('only exact events of ours pass', () => {
    assert.deepEqual(parseEvent(JSON.stringify({ type: 'user', id })), { type: 'user', id });
    assert.deepEqual(parseEvent(JSON.stringify({ type: 'sid', sid: id, until: 1 })), { type: 'sid', sid: id, until: 1 });
    for (const junk of [
      'not json',
      'null',
      '[]',
      JSON.stringify({ type: 'user', id: 'alice' }),
      JSON.stringify({ type: 'user', id, extra: 1 }),
      JSON.stringify({ type: 'jti', jti: id, until: 'soon' }),
      JSON.stringify({ type: 'sid', sid: id, until: -5 }),
      JSON.stringify({ type: 'drop-tables' }),
      JSON.stringify({ type: 'user', id: id + 'x'.repeat(600) }),
    ]) {
      assert.equal(parseEvent(junk), undefined, junk.slice(0, 60));
    }
  });
});
