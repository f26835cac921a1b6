// Mail delivery (issue 12): the outbox survives an SMTP outage and a
// restart; two nodes sharing PostgreSQL deliver a mail once even when the
// node delivering it is killed; development without SMTP_URL writes .eml
// files and logs their links; production without it answers 503; the CLI
// sends a test mail over STARTTLS; smtps:// works.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { simpleParser } from 'mailparser';
import { after, before, describe, test } from 'node:test';
import { smtpTransport } from '../src/auth/mail/transport.js';
import { backends, createServerDatabase, eventually, hasServer, HttpClient, openTestDatabase, registerAndLogin, registerUser, startApp, TEST_SECRET, uniqueName } from './helpers.js';
import { MailCatcher, outboxDrained, RESET, tokenOf, VERIFY } from './mail-catcher.js';
import { freePort, ROOT, spawnServer, tempDir, waitUntilUp, type ServerProcess } from './process-helpers.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    this.text += chunk.toString();
    done();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NO_IP_LIMIT = { RATE_LIMIT_PASSWORD_RESET_PER_HOUR: '100000' };

for (const backend of backends()) {
  describe(`mail delivery through an outage and a restart (${backend})`, () => {
    test('SMTP down at the request: 202 all the same; the mail arrives once after the server is back', async (t) => {
      const smtp = new MailCatcher();
      await smtp.start();
      await smtp.stop(); // keep the port, refuse connections
      const app = await startApp({
        backend,
        env: NO_IP_LIMIT,
        options: { mail: { transport: smtpTransport(smtp.url), retryBaseMs: 200, retryMaxMs: 1000 } },
      });
      try {
        const u = await registerUser(app.http);
        const r = await app.http.post('/auth/password-reset', { email: u.email });
        assert.equal(r.status, 202);
        assert.deepEqual(r.body, {});
        // It was tried, failed, and waits for a retry.
        assert.ok(
          await eventually(async () => {
            const rows = (await app.core.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM mail_outbox WHERE attempts >= 2 AND sent_at IS NULL AND last_error IS NOT NULL`)).rows;
            return rows[0]!.n >= 1;
          }, 10_000),
          'the delivery was retried',
        );
        await smtp.start();
        const back = performance.now();
        await smtp.waitFor(u.email, RESET);
        const delay = performance.now() - back;
        t.diagnostic(`delivered ${delay.toFixed(0)} ms after the SMTP server came back (retry backoff 200 ms doubling to at most 1000 ms)`);
        assert.ok(delay < 5000, `delivered ${delay} ms after the server returned`);
        await outboxDrained(app.core.db);
        await sleep(300);
        assert.equal(smtp.to(u.email, RESET).length, 1, 'once');
        assert.equal(smtp.to(u.email, VERIFY).length, 1, 'the registration mail queued during the outage too');
      } finally {
        await app.close();
        await smtp.stop();
      }
    });

    test('nothing lost on a restart: queued while SMTP is down, delivered by the next start', async () => {
      const smtp = new MailCatcher();
      await smtp.start();
      await smtp.stop();
      const db = await openTestDatabase(backend);
      const options = { mail: { transport: smtpTransport(smtp.url), retryBaseMs: 200, retryMaxMs: 1000 } };
      try {
        const first = await startApp({ db, env: NO_IP_LIMIT, options });
        const u = await registerUser(first.http);
        assert.equal((await first.http.post('/auth/password-reset', { email: u.email })).status, 202);
        await eventually(async () => (await db.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM mail_outbox WHERE kind = 'mail' AND sent_at IS NULL`)).rows[0]!.n >= 2, 10_000);
        await first.close();
        await smtp.start();
        const second = await startApp({ db, env: NO_IP_LIMIT, options: { mail: { transport: smtpTransport(smtp.url) } } });
        try {
          await smtp.waitFor(u.email, RESET);
          await smtp.waitFor(u.email, VERIFY);
          await outboxDrained(db.db);
          assert.equal(smtp.mails.length, 2);
        } finally {
          await second.close();
        }
      } finally {
        await db.close();
        await smtp.stop();
      }
    });
  });
}

describe('development without SMTP_URL: the .eml outbox', () => {
  test('each mail is a file under DATA_DIR/outbox, its link logged, its content not', async () => {
    const sink = new Capture();
    const app = await startApp({ env: { NODE_ENV: 'development', PUBLIC_URL: 'http://localhost:8000' }, logger: { level: 'info', stream: sink } });
    try {
      assert.match(sink.text, /DATA_DIR\/outbox/);
      const u = await registerUser(app.http);
      const dir = join(app.config.dataDir, 'outbox');
      assert.ok(await eventually(async () => { try { return readdirSync(dir).length === 1; } catch { return false; } }, 10_000));
      const file = join(dir, readdirSync(dir)[0]!);
      assert.match(file, /\.eml$/);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const mail = await simpleParser(readFileSync(file));
      assert.equal(mail.to && !Array.isArray(mail.to) ? mail.to.text : '', u.email);
      const token = tokenOf({ text: mail.text ?? '' });
      assert.ok(typeof mail.html === 'string' && mail.html.includes(token));
      // The link is logged (development only); the mail's words are not.
      assert.ok(sink.text.includes(`http://localhost:8000/verify-email#token=${token}`), 'link logged');
      assert.ok(!sink.text.includes('Please confirm'), 'content not logged');
      assert.ok(!sink.text.includes(u.email), 'address not logged');
    } finally {
      await app.close();
    }
  });
});

describe('a recipient the SMTP server refuses', () => {
  test('for good (550 at RCPT TO): given up at once, logged, nothing else held up; for now (450): retried', async () => {
    const smtp = await new MailCatcher().start();
    const sink = new Capture();
    const app = await startApp({
      env: NO_IP_LIMIT,
      logger: { level: 'warn', stream: sink },
      options: { mail: { transport: smtpTransport(smtp.url), retryBaseMs: 200, retryMaxMs: 1000 } },
    });
    try {
      const [gone, busy] = [`${uniqueName('gone')}@example.com`, `${uniqueName('busy')}@example.com`];
      smtp.refuse.set(gone, 550);
      smtp.refuse.set(busy, 450);
      for (const email of [gone, busy]) assert.equal((await app.http.post('/auth/register', { username: uniqueName('u'), email, password: 'Quartz-lantern-93-ember' })).status, 201);
      const other = await registerUser(app.http);
      await smtp.waitFor(other.email, VERIFY);
      const row = async (to: string) => {
        const rows = (await app.core.db.query<{ attempts: number; payload: unknown; sent_at: Date | null; last_error: string | null; next_attempt_at: Date }>(
          `SELECT attempts, payload, sent_at, last_error, next_attempt_at FROM mail_outbox WHERE kind = 'mail' ORDER BY id`,
        )).rows;
        return rows[[gone, busy, other.email].indexOf(to)]!;
      };
      assert.ok(await eventually(async () => (await row(busy)).attempts >= 3, 10_000), 'the 450 is retried');
      const refused = await row(gone);
      assert.equal(refused.attempts, 1, 'tried once: a 550 is not retried');
      assert.equal(refused.payload, null, 'its content is erased');
      assert.equal(refused.sent_at, null);
      assert.match(refused.last_error ?? '', /gave up after 1 attempts: SMTP 550/);
      assert.match(sink.text, /mail given up: the server refused it for good/);
      assert.equal((await row(busy)).payload === null, false, 'the 450 is still queued');
      // Once the mailbox takes mail again, the retried one arrives.
      smtp.refuse.delete(busy);
      await smtp.waitFor(busy, VERIFY);
      assert.equal(smtp.to(gone).length, 0);
    } finally {
      await app.close();
      await smtp.stop();
    }
  });
});

describe('production without SMTP_URL', () => {
  test('the mail routes answer 503 mail_unavailable, and the start-up log says why', async () => {
    const sink = new Capture();
    const app = await startApp({ env: { NODE_ENV: 'production' }, logger: { level: 'info', stream: sink } });
    try {
      assert.match(sink.text, /mail is off: SMTP_URL is not set/);
      const u = await registerAndLogin(app.http); // registration works, without a mail
      const calls = [
        app.http.post('/auth/password-reset', { email: u.email }),
        app.http.post('/auth/password-reset/confirm', { token: 'A'.repeat(43), new_password: 'Quartz-lantern-93-ember' }),
        app.http.post('/auth/verify-email', { token: 'A'.repeat(43) }),
        app.http.post('/users/me/verify-email', undefined, u.access),
      ];
      for (const r of await Promise.all(calls)) {
        assert.equal(r.status, 503, r.text);
        assert.equal(r.body.code, 'mail_unavailable');
        assert.match(r.body.detail, /SMTP_URL/);
      }
      assert.equal((await app.core.db.query<{ n: number }>('SELECT count(*)::int AS n FROM mail_outbox')).rows[0]!.n, 0);
    } finally {
      await app.close();
    }
  });
});

describe('transports', () => {
  const TSX_LOADER = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const cwd = tempDir('gatehouse-mailcli-');
    const child = spawn(process.execPath, ['--import', TSX_LOADER, join(ROOT, 'src', 'cli.ts'), ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, NODE_ENV: 'test', SECRET_KEY: TEST_SECRET, DATA_DIR: join(cwd, 'data'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    return new Promise((resolve) => {
      child.on('close', (code) => {
        clearTimeout(timer);
        rmSync(cwd, { recursive: true, force: true });
        resolve({ code, stdout, stderr });
      });
    });
  }

  test('npm run cli -- send-test-mail ADDRESS, over STARTTLS; a dead server: exit 1, one line', async () => {
    const smtp = new MailCatcher('starttls');
    await smtp.start();
    try {
      const r = await cli(['send-test-mail', 'ops@example.com'], { SMTP_URL: `${smtp.url}/?requireTLS=true&tls.rejectUnauthorized=false` });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /sent a test mail to ops@example.com/);
      const mail = await smtp.waitFor('ops@example.com');
      assert.equal(mail.secure, true, 'upgraded by STARTTLS');
      assert.match(mail.subject, /test mail/);
    } finally {
      await smtp.stop();
    }
    const dead = await cli(['send-test-mail', 'ops@example.com'], { SMTP_URL: `smtp://127.0.0.1:${await freePort()}` });
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /^gatehouse: the mail was not accepted \(ECONNECTION|ESOCKET/);
    assert.equal(dead.stderr.trim().split('\n').length, 1);
    const usage = await cli(['send-test-mail', 'not-an-address'], {});
    assert.equal(usage.code, 1);
  });

  test('smtps:// (TLS from the first byte)', async () => {
    const smtp = new MailCatcher('implicit');
    await smtp.start();
    const transport = smtpTransport(`${smtp.url}/?tls.rejectUnauthorized=false`);
    try {
      await transport.send({ from: 'Gatehouse <no-reply@localhost>', to: 'tls@example.com', subject: 's', text: 't', html: '<p>h</p>', links: [] });
      const mail = await smtp.waitFor('tls@example.com');
      assert.equal(mail.secure, true);
    } finally {
      transport.close?.();
      await smtp.stop();
    }
  });
});

describe('two nodes sharing PostgreSQL: the delivering node is killed', { skip: hasServer() ? false : 'needs DATABASE_URL (the PostgreSQL server)' }, () => {
  const procs: ServerProcess[] = [];
  const smtp = new MailCatcher();
  let drop: (() => Promise<void>) | undefined;
  const nodes: Record<string, { proc: ServerProcess; http: HttpClient }> = {};

  before(async () => {
    await smtp.start();
    const created = await createServerDatabase();
    drop = created.drop;
    for (const name of ['node-a', 'node-b']) {
      const port = await freePort();
      const proc = spawnServer({
        NODE_ENV: 'production',
        SECRET_KEY: TEST_SECRET,
        DATABASE_URL: created.url,
        PORT: String(port),
        LOG_LEVEL: 'warn',
        // The EHLO name tells the SMTP server which node is delivering.
        SMTP_URL: `${smtp.url}/?name=${name}`,
        MAIL_LEASE_SECONDS: '3',
        RATE_LIMIT_REGISTER_PER_HOUR: '100000',
      });
      procs.push(proc);
      await waitUntilUp(`http://127.0.0.1:${port}/ready`, proc);
      nodes[name] = { proc, http: new HttpClient(`http://127.0.0.1:${port}`) };
    }
  });

  after(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
    await smtp.stop();
    await drop?.();
  });

  test('the mail arrives once, from the other node, after the lease ends', async (t) => {
    const username = uniqueName('kill');
    const email = `${username}@example.com`;
    const reg = await nodes['node-a']!.http.post('/auth/register', { username, email, password: 'plum-Anchor-47-velvet' });
    assert.equal(reg.status, 201, reg.text);
    await smtp.waitFor(email, VERIFY);

    const held = smtp.holdNext();
    const r = await nodes['node-a']!.http.post('/auth/password-reset', { email });
    assert.equal(r.status, 202);
    const session = await held;
    const victim = session.hostNameAppearsAs;
    const survivor = victim === 'node-a' ? 'node-b' : 'node-a';
    // Killed mid-delivery: it holds the lease and has not had the SMTP server's acceptance.
    const proc = nodes[victim]!.proc;
    proc.child.kill('SIGKILL');
    await proc.exited;
    const killedAt = performance.now();
    smtp.release();

    const mail = await smtp.waitFor(email, RESET, 1, 20_000);
    t.diagnostic(`${victim} killed; ${survivor} delivered ${(performance.now() - killedAt).toFixed(0)} ms later (lease 3 s)`);
    assert.equal(mail.client, survivor);
    await sleep(4000); // past another lease: nothing else comes
    assert.equal(smtp.to(email, RESET).length, 1, 'exactly once');
    // The survivor's link works.
    const ok = await nodes[survivor]!.http.post('/auth/password-reset/confirm', { token: tokenOf(mail), new_password: 'Quartz-lantern-93-ember' });
    assert.equal(ok.status, 204, ok.text);
  });
});
