// The mail settings (issue 12): defaults, refusals, and the plugin's rules.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resolveOptions } from '../src/auth/options.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { TEST_SECRET } from './helpers.js';

// With SECRET_KEY set, loadConfig never touches DATA_DIR.
const base = () => ({ NODE_ENV: 'test', SECRET_KEY: TEST_SECRET, DATA_DIR: '/nonexistent/gatehouse-data' });

describe('mail configuration', () => {
  test('defaults', () => {
    const c = loadConfig(base());
    assert.equal(c.smtpUrl, undefined);
    assert.equal(c.mailFrom, 'Gatehouse <no-reply@localhost>');
    assert.equal(c.passwordResetExpireMinutes, 30);
    assert.equal(c.emailVerifyExpireHours, 48);
    assert.equal(c.requireEmailVerification, false);
    assert.equal(c.rateLimitPasswordResetPerHour, 10);
  });

  test('refusals name the variable and never echo a URL that may hold a password', () => {
    const refuse = (env: Record<string, string>, variable: string) => {
      assert.throws(() => loadConfig({ ...base(), ...env }), (err: unknown) => err instanceof ConfigError && err.variable === variable && !err.message.includes('hunter2'));
    };
    refuse({ SMTP_URL: 'http://user:hunter2@mail.example.com' }, 'SMTP_URL');
    refuse({ SMTP_URL: 'not a url hunter2' }, 'SMTP_URL');
    refuse({ MAIL_FROM: 'Gatehouse' }, 'MAIL_FROM');
    refuse({ PASSWORD_RESET_EXPIRE_MINUTES: '0' }, 'PASSWORD_RESET_EXPIRE_MINUTES');
    refuse({ EMAIL_VERIFY_EXPIRE_HOURS: '100000' }, 'EMAIL_VERIFY_EXPIRE_HOURS');
    refuse({ NODE_ENV: 'production', REQUIRE_EMAIL_VERIFICATION: 'true' }, 'REQUIRE_EMAIL_VERIFICATION');
    assert.equal(loadConfig({ ...base(), SMTP_URL: 'smtps://u:p@mail.example.com:465' }).smtpUrl, 'smtps://u:p@mail.example.com:465');
  });

  test('the plugin: requireEmailVerification needs mail; a transport must be able to send', () => {
    const opts = { database: 'postgres://x/y', secretKey: TEST_SECRET };
    assert.throws(() => resolveOptions({ ...opts, requireEmailVerification: true }), /requireEmailVerification needs mail/);
    assert.throws(() => resolveOptions({ ...opts, mail: { transport: {} as never } }), /mail\/transport must be a MailTransport/);
    const transport = { description: 'test', send: async () => {} };
    const resolved = resolveOptions({ ...opts, mail: { transport, from: 'X <x@example.com>' } });
    assert.equal(resolved.mail?.transport, transport, 'kept as given, not copied');
    assert.equal(resolved.mail?.retryMaxMs, 300_000);
  });
});
