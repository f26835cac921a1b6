// The import-users command's terminal side: per-row reports and the file's
// problems on stderr, a progress line there too when it is a terminal (for
// long imports), the summary on stdout. Exit status 1 when any row was bad
// or the file stopped the import.
import { systemClock } from '../clock.js';
import type { Database } from '../db/client.js';
import { UsersRepository } from '../auth/users.js';
import { importUsers, summaryLine } from './import.js';

export async function importUsersCommand(db: Database, path: string): Promise<number> {
  const err = process.stderr;
  let showing = false;
  const clear = () => {
    if (showing) err.write('\r\x1b[K');
    showing = false;
  };
  // New users are in no node's cache: nothing to announce (see UsersRepository.insertMany).
  const users = new UsersRepository(db, systemClock, async () => {});
  const summary = await importUsers(users, path, {
    report: (line) => {
      clear();
      err.write(line + '\n');
    },
    progress: err.isTTY
      ? (line) => {
          err.write(`\r\x1b[K${line}`);
          showing = true;
        }
      : undefined,
  });
  clear();
  process.stdout.write(summaryLine(summary) + '\n');
  return summary.bad > 0 || summary.failed ? 1 : 0;
}
