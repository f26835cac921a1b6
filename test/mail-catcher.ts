// A real SMTP server for the tests (smtp-server on a free port), keeping
// every accepted mail parsed by mailparser. It can be stopped and started
// again on the same port (an SMTP outage), speak STARTTLS or TLS, hold
// a delivery at RCPT TO (to kill the node that is delivering), and refuse
// chosen recipients for good (5xx) or for now (4xx).
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { eventually } from './helpers.js';

export interface CaughtMail {
  /** The EHLO name of the client that delivered it. */
  client: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  secure: boolean;
  parsed: ParsedMail;
}

export class MailCatcher {
  readonly mails: CaughtMail[] = [];
  private server: SMTPServer | undefined;
  /** When set, the next RCPT TO waits until release() (the test kills the client meanwhile). */
  private hold: { session?: SMTPServerSession; release?: () => void; held?: (s: SMTPServerSession) => void } | undefined;
  port = 0;
  /** Recipients refused at RCPT TO with this reply code (5xx for good, 4xx for now). */
  readonly refuse = new Map<string, number>();

  constructor(private readonly tls: 'none' | 'starttls' | 'implicit' = 'none') {}

  async start(port = this.port): Promise<this> {
    const server = new SMTPServer({
      authOptional: true,
      secure: this.tls === 'implicit',
      disabledCommands: this.tls === 'none' ? ['STARTTLS'] : [],
      logger: false,
      onRcptTo: (address, session, cb) => {
        const code = this.refuse.get(address.address.toLowerCase());
        if (code) return cb(Object.assign(new Error(code >= 500 ? 'No such mailbox here' : 'Mailbox busy, try later'), { responseCode: code }));
        const hold = this.hold;
        if (!hold || hold.session) return cb();
        hold.session = session;
        hold.release = () => cb();
        hold.held?.(session);
      },
      onData: (stream, session, cb) => {
        simpleParser(stream)
          .then((parsed) => {
            this.mails.push({
              client: session.hostNameAppearsAs,
              to: (session.envelope.rcptTo[0]?.address ?? '').toLowerCase(),
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
              secure: session.secure,
              parsed,
            });
            cb();
          })
          .catch((err: Error) => cb(err));
      },
    });
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.listen(port, '127.0.0.1', () => resolve());
      server.once('error', reject);
    });
    this.server = server;
    this.port = (server.server.address() as { port: number }).port;
    return this;
  }

  get url(): string {
    return `${this.tls === 'implicit' ? 'smtps' : 'smtp'}://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.hold?.release?.();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The next delivery stops at RCPT TO; resolves with the session of the client held there. */
  holdNext(): Promise<SMTPServerSession> {
    return new Promise((resolve) => {
      this.hold = { held: resolve };
    });
  }

  /** Lets the held delivery go on (its client may be dead by then), and holds nothing more. */
  release(): void {
    const release = this.hold?.release;
    this.hold = undefined;
    release?.();
  }

  to(address: string, subject?: RegExp): CaughtMail[] {
    return this.mails.filter((m) => m.to === address.toLowerCase() && (!subject || subject.test(m.subject)));
  }

  /** Waits until `count` mails to `address` (matching `subject`) have arrived; the last of them. */
  async waitFor(address: string, subject?: RegExp, count = 1, ms = 10_000): Promise<CaughtMail> {
    const ok = await eventually(async () => this.to(address, subject).length >= count, ms, 20);
    if (!ok) throw new Error(`no mail ${count} to ${address} ${subject ?? ''} within ${ms} ms (have ${this.to(address, subject).length})`);
    return this.to(address, subject)[count - 1]!;
  }
}

/** The token of a mailed link (`#token=…`). */
export function tokenOf(mail: { text: string }): string {
  const m = /#token=([A-Za-z0-9_-]{43})/.exec(mail.text);
  if (!m) throw new Error(`no token link in: ${mail.text}`);
  return m[1]!;
}

export const RESET = /reset your/i;
export const RESET_DONE = /password was changed/i;
export const VERIFY = /confirm your email/i;
export const CHANGED = /address of your .* was changed/i;

/** Waits until the outbox holds nothing left to deliver or expand. */
export async function outboxDrained(db: { query: <R>(t: string) => Promise<{ rows: R[] }> }, ms = 10_000): Promise<void> {
  const ok = await eventually(async () => {
    const r = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM mail_outbox WHERE payload IS NOT NULL');
    return r.rows[0]!.n === 0;
  }, ms, 10);
  if (!ok) throw new Error('the mail outbox did not drain');
}
