// No enumeration through POST /auth/password-reset (issue 12): a known and
// an unknown address get the same status, body and headers, in the same
// time. The request path does the same work for both (one sealed row in the
// outbox); the lookup and the mail happen in the sender, off the request.
// Samples alternate in a rotating order, and the sender's work after each
// request is waited for outside the timing, so it cannot fall on the next
// sample; medians must agree within 5%. (Every answer also waits for a
// floor of 100 ms, which hides the database's and the node's jitter.)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { registerUser, startApp, uniqueName, type TestApp } from './helpers.js';
import { MailCatcher, outboxDrained, RESET } from './mail-catcher.js';
import { median, medianRatio } from './timing.js';

const ROUNDS = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('password-reset request: no enumeration', () => {
  let app: TestApp;
  const smtp = new MailCatcher();
  let known: string;

  before(async () => {
    await smtp.start();
    app = await startApp({ env: { SMTP_URL: smtp.url, RATE_LIMIT_PASSWORD_RESET_PER_HOUR: '0' } });
    known = (await registerUser(app.http)).email;
  });
  after(async () => {
    await app.close();
    await smtp.stop();
  });

  /** Headers that differ by nature between any two answers. */
  const comparable = (h: Headers) => [...h.entries()].filter(([k]) => !['date', 'x-request-id'].includes(k));

  test('same status, body and headers; medians of known and unknown within 5%', async (t) => {
    const addresses = { known: () => known, unknown: () => `${uniqueName('nobody')}@example.com` };
    const first = await app.http.post('/auth/password-reset', { email: known });
    const second = await app.http.post('/auth/password-reset', { email: addresses.unknown() });
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    assert.equal(first.text, second.text);
    assert.deepEqual(comparable(first.headers), comparable(second.headers));
    await outboxDrained(app.core.db);

    const times: Record<'known' | 'unknown', number[]> = { known: [], unknown: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? (['known', 'unknown'] as const) : (['unknown', 'known'] as const);
      for (const kind of order) {
        const email = addresses[kind]();
        const t0 = performance.now();
        const r = await app.http.post('/auth/password-reset', { email });
        times[kind].push(performance.now() - t0);
        assert.equal(r.status, 202);
        // The sender's lookup (and mail) finish before the next sample starts.
        await outboxDrained(app.core.db);
        await sleep(30);
      }
    }
    const mk = median(times.known);
    const mu = median(times.unknown);
    const spread = Math.abs(mk - mu) / Math.min(mk, mu);
    const ratio = medianRatio(times.known, times.unknown);
    t.diagnostic(`median of the per-round ratios known/unknown: ${ratio.toFixed(3)}`);
    t.diagnostic(`medians over ${ROUNDS} rounds: known ${mk.toFixed(2)} ms, unknown ${mu.toFixed(2)} ms; spread ${(spread * 100).toFixed(1)}%`);
    assert.ok(spread <= 0.05, `known ${mk.toFixed(2)} ms vs unknown ${mu.toFixed(2)} ms: spread ${(spread * 100).toFixed(1)}% > 5%`);
    // The known address did get its mails (3 an hour), so the two paths really differed behind the answer.
    assert.equal(smtp.to(known, RESET).length, 3);
  });
});
