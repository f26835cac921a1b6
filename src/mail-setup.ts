// The service's mail, from its configuration: SMTP when SMTP_URL is set;
// otherwise, outside production, .eml files under DATA_DIR/outbox with their
// links logged (so `npm start` shows the whole flow); in production without
// SMTP_URL no mail at all, and the mail routes answer 503.
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { GatehouseOptions } from './auth/options.js';
import { testMail } from './auth/mail/templates/index.js';
import { fileTransport, smtpTransport, type MailTransport } from './auth/mail/transport.js';
import type { Config } from './config.js';

/** The transport the configuration asks for; undefined in production without SMTP_URL. */
export function mailTransport(config: Config, log: FastifyBaseLogger): MailTransport | undefined {
  if (config.smtpUrl) return smtpTransport(config.smtpUrl);
  if (config.nodeEnv === 'production') return undefined;
  // Development only: the link holds a token, which is the point of logging it here.
  return fileTransport(join(config.dataDir, 'outbox'), (file, links) => log.info({ file, links }, 'mail written to the development outbox'));
}

/** The plugin's `mail` option, and one start-up line saying where mail goes (or why there is none). */
export function mailOption(config: Config, log: FastifyBaseLogger): GatehouseOptions['mail'] {
  const transport = mailTransport(config, log);
  if (!transport) {
    log.warn('mail is off: SMTP_URL is not set and NODE_ENV=production, so password reset and email verification answer 503 (mail_unavailable)');
    return undefined;
  }
  log.info({ mail: transport.description }, config.smtpUrl ? 'mail goes through SMTP' : 'no SMTP_URL: mails are written to DATA_DIR/outbox and their links logged');
  return { transport, from: config.mailFrom, leaseMs: config.mailLeaseSeconds * 1000 };
}

/** `npm run cli -- send-test-mail ADDRESS`: one mail straight through the transport (not the outbox); where it went. */
export async function sendTestMail(config: Config, to: string): Promise<string> {
  const printLink = (file: string) => process.stdout.write(`written to ${file}\n`);
  const transport = config.smtpUrl ? smtpTransport(config.smtpUrl) : config.nodeEnv === 'production' ? undefined : fileTransport(join(config.dataDir, 'outbox'), printLink);
  if (!transport) throw new Error('SMTP_URL is not set (NODE_ENV=production): there is no mail to test');
  try {
    await transport.send({ from: config.mailFrom, to, ...testMail({ product: 'Gatehouse', publicUrl: config.publicUrl }) });
  } catch (err) {
    const e = err as { code?: string; responseCode?: number; message?: string };
    throw new Error(`the mail was not accepted (${e.responseCode ?? e.code ?? 'error'}): ${e.message ?? String(err)}`, { cause: err });
  } finally {
    transport.close?.();
  }
  return transport.description;
}
