// Limits that protect the service and its accounts: registrations per IP,
// guessing the current password on a password change, and a full hashing
// queue answering 503 at once instead of piling up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { finishAll, holdForms } from './held-requests.js';
import { registerAndLogin, startApp, STRONG_PASSWORD, uniqueName } from './helpers.js';

test('registrations are limited per IP, with Retry-After and a problem body', async () => {
  const app = await startApp({ env: { RATE_LIMIT_REGISTER_PER_HOUR: '2' } });
  try {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 3; i++) {
      const username = uniqueName('reg');
      last = await app.http.post('/auth/register', { username, email: `${username}@example.com`, password: STRONG_PASSWORD });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [201, 201, 429]);
    assert.match(last!.headers.get('retry-after') ?? '', /^\d+$/);
    assert.match(last!.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.equal(last!.body.status, 429);
  } finally {
    await app.close();
  }
});

test('guessing the current password on PUT /users/me/password is limited like logins', async () => {
  const app = await startApp({ env: { RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT: '3' } });
  try {
    const u = await registerAndLogin(app.http);
    const storedHash = async () =>
      (await app.core.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [u.id])).rows[0]!.password_hash;
    const before = await storedHash();
    const change = (current: string) =>
      app.http.put('/users/me/password', { current_password: current, new_password: 'Another-plum-58-anchor' }, u.access);
    for (let i = 0; i < 3; i++) assert.equal((await change(`wrong-guess-${i}`)).status, 400);
    const blocked = await change(u.password);
    assert.equal(blocked.status, 429, 'even the right password is refused once the account is locked');
    assert.match(blocked.headers.get('retry-after') ?? '', /^\d+$/);
    assert.equal(await storedHash(), before, 'the password did not change');
    // The same account lock covers logins from that address, by username or by email.
    assert.equal((await app.http.token({ username: u.username, password: u.password })).status, 429);
    assert.equal((await app.http.token({ username: u.email, password: u.password })).status, 429);
  } finally {
    await app.close();
  }
});

test('a full hashing queue answers 503 with Retry-After at once, and the rest still succeed', async () => {
  const app = await startApp({ env: { HASH_CONCURRENCY: '1', HASH_QUEUE_MAX: '1' } });
  try {
    const u = await registerAndLogin(app.http);
    // Eight logins the server has already received are held open, then their
    // bodies are finished in the same tick: all eight reach the hashing queue
    // within a millisecond or two, while one argon2id verification takes ten
    // milliseconds or more on any machine (more when loaded: the hashing
    // thread runs at a lower priority). One hashes, one waits, the others find
    // the queue full, however fast the machine is.
    const held = await holdForms(app.url, '/auth/token', { username: u.username, password: u.password }, 8);
    const answers = await finishAll(held);
    const statuses = answers.map((r) => r.status);
    assert.ok(statuses.includes(200), `some logins succeed: ${statuses}`);
    const busy = answers.filter((r) => r.status === 503);
    assert.ok(busy.length >= 1, `a full queue refuses: ${statuses}`);
    for (const r of busy) {
      assert.equal(r.headers.get('retry-after'), '1');
      assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
    }
    assert.ok(statuses.every((s) => s === 200 || s === 503), `nothing else: ${statuses}`);
  } finally {
    await app.close();
  }
});

test('password changes are limited per user whatever the outcome: one user cannot monopolise the hashing and scoring threads', async () => {
  const app = await startApp();
  try {
    const u = await registerAndLogin(app.http);
    const other = await registerAndLogin(app.http);
    // Right current password every time, each change to a new strong one: only the count limits it.
    let current = u.password;
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const next = `Another-plum-${i}-anchor-${i * 7}`;
      const r = await app.http.put('/users/me/password', { current_password: current, new_password: next }, u.access);
      statuses.push(r.status);
      if (r.status === 204) current = next;
    }
    assert.deepEqual(statuses, [...Array(10).fill(204), 429], 'ten an hour, then 429');
    // Another user is not affected, and neither is the email change's own check of the same budget.
    assert.equal((await app.http.put('/users/me/password', { current_password: other.password, new_password: 'Yet-another-plum-99' }, other.access)).status, 204);
    const email = await app.http.patch('/users/me', { email: `moved.${u.username}@example.org`, current_password: current }, u.access);
    assert.equal(email.status, 429, 'the email change shares the budget');
  } finally {
    await app.close();
  }
});
