// Administrative commands: `npm run cli -- <command> [options]`.
//   create-user --username U --email E [--full-name N] [--admin]
//       password from a hidden prompt, or the first line of stdin when it is not a terminal
//   gen-secret      print a new random SECRET_KEY
//   migrate         apply pending migrations
//   send-test-mail ADDRESS
//       one mail through SMTP_URL (or, in development, into DATA_DIR/outbox) to check the settings
//   set-role USER admin|user
//       USER is a username or an email; running nodes are told (NOTIFY / Redis)
//   rotate-keys     a new signing key: published now, signs after KEY_PUBLISH_DELAY_SECONDS
//   import-users FILE
//       users from a JSON array or a CSV file with a header (src/users-import/)
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { checkPasswordPolicy } from './auth/password-policy.js';
import { PasswordHasher } from './auth/passwords.js';
import { announceUserChange } from './admin/announce.js';
import { rotateKeys, RotationRefused } from './admin/rotate-keys.js';
import { KeyDecryptionError } from './auth/key-store.js';
import { AuthError } from './auth/errors.js';
import { isValidEmail, LastAdminError, normalizeUsername, USERNAME_RE, UsersRepository } from './auth/users.js';
import { systemClock } from './clock.js';
import { sendTestMail } from './mail-setup.js';
import { ConfigError, loadConfig, loadDotEnv, policyOf, type Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { migrate } from './db/migrate.js';
import { authMigrations } from './auth/migrations.js';
import { blogMigrations } from './posts/migrations.js';
import { importUsersCommand } from './users-import/cli.js';

export class CliError extends Error {}

/** Resolves with the exit status when it is not 0. */
type Command = (args: string[]) => Promise<void | number>;

async function withDatabase<T>(config: Config, fn: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrate(db, [authMigrations, blogMigrations]);
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** The first line of stdin (without its newline) when piped; a hidden prompt on a terminal. */
export async function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const rl = createInterface({ input: stdin, crlfDelay: Infinity });
    for await (const line of rl) {
      rl.close();
      return line;
    }
    throw new CliError('no password on standard input');
  }
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let value = '';
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new CliError('cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

const commands: Record<string, Command> = {
  async 'gen-secret'() {
    // 32 random bytes → 43 base64url characters (43 bytes of UTF-8): a 256-bit SECRET_KEY.
    process.stdout.write(randomBytes(32).toString('base64url') + '\n');
  },

  async migrate() {
    const config = loadConfig();
    await withDatabase(config, async () => undefined);
    process.stdout.write('migrations up to date\n');
  },

  async 'create-user'(args) {
    const { values } = parseArgs({
      args,
      options: {
        username: { type: 'string' },
        email: { type: 'string' },
        'full-name': { type: 'string' },
        admin: { type: 'boolean', default: false },
      },
      strict: true,
    });
    if (!values.username || !values.email) throw new CliError('usage: create-user --username U --email E [--full-name N] [--admin]');
    const config = loadConfig();
    const username = normalizeUsername(values.username);
    if (!USERNAME_RE.test(username)) throw new CliError('username must be 3–32 characters of a-z, 0-9, _ . -');
    if (!isValidEmail(values.email)) throw new CliError('email is not a valid address');
    const password = await readPassword('Password: ');
    const failures = checkPasswordPolicy(
      password,
      { username, email: values.email },
      policyOf(config),
    );
    if (failures.length) throw new CliError(`password ${failures.map((f) => f.message).join('; ')}`);
    const hash = await new PasswordHasher(1, 1).hash(password);
    // A new user is in no node's cache: nothing to announce.
    const user = await withDatabase(config, (db) =>
      new UsersRepository(db, systemClock, async () => {})
        .create({
          username,
          email: values.email!,
          fullName: values['full-name'] ?? null,
          passwordHash: hash,
          role: values.admin ? 'admin' : 'user',
        })
        .catch((err: unknown) => {
          if (err instanceof AuthError) throw new CliError(`that ${err.code === 'email_taken' ? 'email' : 'username'} is already taken`);
          throw err;
        }),
    );
    process.stdout.write(`created ${user.role} ${user.username} (${user.id})\n`);
  },

  async 'import-users'(args) {
    const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new CliError('usage: import-users FILE   (a JSON array of objects, or CSV with a header row)');
    return withDatabase(loadConfig(), (db) => importUsersCommand(db, positionals[0]!));
  },

  async 'send-test-mail'(args) {
    const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
    const [address] = positionals;
    if (positionals.length !== 1 || !address || !isValidEmail(address)) throw new CliError('usage: send-test-mail ADDRESS');
    process.stdout.write(`sent a test mail to ${address} via ${await sendTestMail(loadConfig(), address)}\n`);
  },

  async 'set-role'(args) {
    const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
    const [login, role] = positionals;
    if (positionals.length !== 2 || !login || (role !== 'admin' && role !== 'user')) {
      throw new CliError('usage: set-role USER admin|user   (USER: username or email)');
    }
    const config = loadConfig();
    const { user, changed, unannounced } = await withDatabase(config, async (db) => {
      // Running nodes cache roles: the repository tells them, so a demoted admin's tokens fail now.
      const unannounced: string[] = [];
      const users = new UsersRepository(db, systemClock, async (id) => unannounced.push(...(await announceUserChange(db, config, id))));
      const found = await users.findForLogin(login);
      if (!found) throw new CliError(`no user ${login}`);
      const result = await users.change(found.id, { role }).catch((err: unknown) => {
        if (err instanceof LastAdminError) throw new CliError(`${found.username} is the last enabled admin; promote someone else first`);
        throw err;
      });
      if (!result) throw new CliError(`no user ${login}`);
      return { ...result, unannounced };
    });
    if (unannounced.length) {
      console.warn(`gatehouse: could not notify running nodes via ${unannounced.join(' and ')}; they see the change after a restart or reconnect`);
    }
    process.stdout.write(changed ? `${user.username} is now ${user.role}\n` : `${user.username} was already ${user.role}\n`);
  },

  async 'rotate-keys'(args) {
    parseArgs({ args, options: {}, strict: true });
    const config = loadConfig();
    const r = await withDatabase(config, (db) =>
      rotateKeys(db, config).catch((err: unknown) => {
        if (err instanceof RotationRefused || err instanceof KeyDecryptionError) throw new CliError(err.message);
        throw err;
      }),
    );
    if (r.unannounced.length) {
      console.warn(`gatehouse: could not notify running nodes via ${r.unannounced.join(' and ')}; they load the new key within a minute`);
    }
    const retired = r.previous ? `; key ${r.previous} is retired then, and stays published until every token it signed has expired` : '';
    process.stdout.write(`key ${r.kid} (${config.algorithm}) is published now and signs from ${r.activatesAt.toISOString()}${retired}\n`);
  },
};

export async function runCli(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    console.error(`usage: npm run cli -- <${Object.keys(commands).join('|')}> [options]`);
    return 2;
  }
  try {
    loadDotEnv();
    return (await command(args)) ?? 0;
  } catch (err) {
    // One line, never a stack trace.
    const prefix = err instanceof ConfigError ? 'configuration error: ' : '';
    console.error(`gatehouse: ${prefix}${(err as Error).message}`);
    return 1;
  }
}

process.exitCode = await runCli(process.argv.slice(2));
