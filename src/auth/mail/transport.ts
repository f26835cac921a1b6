// How a mail leaves: a MailTransport takes one finished message and
// resolves once the receiving side has accepted it (an SMTP server's 250
// after DATA), or throws. The outbox (outbox.ts) calls it; anything that
// can send (another provider's API, a test double) can stand in for SMTP.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';

export interface OutgoingMail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  /** The links in the mail: the development outbox logs them; never sent as such. */
  links: string[];
}

export interface MailTransport {
  /** Where mail goes, for the start-up log (never a password). */
  readonly description: string;
  /** Throws MailRejected when this mail can never be delivered; anything else is retried. */
  send(mail: OutgoingMail): Promise<void>;
  close?(): void;
}

/**
 * This mail will never be accepted, however often it is sent again: the
 * outbox gives it up at once instead of retrying it for days.
 */
export class MailRejected extends Error {
  constructor(
    message: string,
    readonly responseCode?: number,
  ) {
    super(message);
  }
}

/**
 * A permanent (5xx) reply about this mail itself: its recipient refused at
 * RCPT TO or its content at DATA. A 5xx anywhere else (AUTH, MAIL FROM, the
 * greeting) says the settings or the server are wrong for every mail: those
 * are retried, and warned about, until the operator fixes them.
 */
function rejectionOf(err: unknown): MailRejected | undefined {
  const e = err as { responseCode?: unknown; command?: unknown; message?: unknown };
  const code = typeof e.responseCode === 'number' ? e.responseCode : 0;
  if (code < 500 || code > 599 || (e.command !== 'RCPT TO' && e.command !== 'DATA')) return undefined;
  return new MailRejected(`SMTP ${code} at ${e.command}: ${String(e.message).slice(0, 200)}`, code);
}

/** Short enough that a dead server frees the outbox's lease long before it ends. */
const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 };

/**
 * SMTP over `smtp://[user:pass@]host:port` (STARTTLS whenever the server
 * offers it; `?requireTLS=true` to insist) or `smtps://` (TLS from the first
 * byte). Query parameters are nodemailer's SMTP options.
 */
export function smtpTransport(url: string): MailTransport {
  const parsed = new URL(url);
  const transporter = nodemailer.createTransport({ ...SMTP_TIMEOUTS, url });
  return {
    description: `SMTP ${parsed.protocol}//${parsed.hostname}:${parsed.port || (parsed.protocol === 'smtps:' ? 465 : 587)}`,
    async send(mail) {
      try {
        await transporter.sendMail({ from: mail.from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html });
      } catch (err) {
        throw rejectionOf(err) ?? err;
      }
    },
    close: () => transporter.close(),
  };
}

/**
 * Development without SMTP: each mail becomes an `.eml` file in `dir` (open
 * it with any mail program) and its links are logged, so the whole flow can
 * be followed from a terminal. Never used in production.
 */
export function fileTransport(dir: string, logLink: (file: string, links: string[]) => void): MailTransport {
  const builder = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  let seq = 0;
  return {
    description: `files in ${dir}`,
    async send(mail) {
      const info = await builder.sendMail({ from: mail.from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}-${++seq}.eml`);
      writeFileSync(file, info.message as Buffer, { mode: 0o600 });
      logLink(file, mail.links);
    },
  };
}
