// `npm run cli -- import-users FILE`: users exported from a FastAPI app
// (or anywhere) into the users table, through the UsersRepository. Rows are
// checked one by one (rows.ts); good ones are inserted BATCH at a time in
// one statement that skips names and addresses already taken, so a second
// run imports nothing twice. Bad rows are reported with their line and
// skipped; taken ones are reported as skipped. The file is streamed and the
// next batch is read only once the last one is stored: memory stays flat
// however long the file. On a terminal, a progress line.
import type { UsersRepository } from '../auth/users.js';
import { checkRecord, FIELDS, type ImportRow } from './rows.js';
import { openSource, SourceError } from './source.js';

export const BATCH = 500;
const PROGRESS_MS = 1000;

export interface ImportSummary {
  imported: number;
  skipped: number;
  bad: number;
  /** The file itself stopped the import (its reason was reported). */
  failed: boolean;
}

export interface ImportOutput {
  /** One line per bad or skipped row, and the file's own problems. */
  report(line: string): void;
  /** A progress line that the next one replaces (a terminal only), or undefined. */
  progress?: (line: string) => void;
}

interface Pending {
  line: number;
  row: ImportRow;
}

export async function importUsers(users: Pick<UsersRepository, 'insertMany' | 'taken'>, path: string, out: ImportOutput): Promise<ImportSummary> {
  const summary: ImportSummary = { imported: 0, skipped: 0, bad: 0, failed: false };
  const started = Date.now();
  let lastProgress = started;
  let batch: Pending[] = [];
  /** The batch being stored while the next one is read (one at a time: the file waits for the database). */
  let storing: Promise<void> = Promise.resolve();
  const unknownColumns = new Set<string>();
  let read = 0;

  const store = async (rows: Pending[]) => {
    const inserted = await users.insertMany(rows.map((p) => p.row));
    summary.imported += inserted.size;
    // Each name inserted stands for the first row that carries it (a later one in the same batch was skipped).
    const skipped = rows.filter((p) => !inserted.delete(p.row.username));
    if (skipped.length === 0) return;
    const taken = await users.taken(
      skipped.map((p) => p.row.username),
      skipped.map((p) => p.row.email),
    );
    for (const p of skipped) {
      summary.skipped++;
      const why = taken.usernames.has(p.row.username) ? `username ${p.row.username} already exists` : `email ${p.row.email} already exists`;
      out.report(`line ${p.line}: skipped: ${why}`);
    }
  };
  const flush = async () => {
    await storing;
    if (batch.length === 0) return;
    storing = store(batch);
    // Handled here so a failure is not an unhandled rejection while the next batch is read; awaiting it still throws.
    storing.catch(() => {});
    batch = [];
  };

  const progress = () => {
    const now = Date.now();
    if (!out.progress || now - lastProgress < PROGRESS_MS) return;
    lastProgress = now;
    const rate = Math.round(read / ((now - started) / 1000));
    out.progress(`${read} rows read: ${summary.imported} imported, ${summary.skipped} skipped, ${summary.bad} bad (${rate} rows/s)`);
  };

  try {
    const source = await openSource(path);
    for await (const { line, fields } of source.records) {
      read++;
      if (typeof fields === 'string') {
        summary.bad++;
        out.report(`line ${line}: bad: the row ${fields}`);
        continue;
      }
      for (const k of Object.keys(fields)) {
        if (!(FIELDS as readonly string[]).includes(k) && unknownColumns.size < 20 && !unknownColumns.has(k)) {
          unknownColumns.add(k);
          out.report(`note: field "${k.slice(0, 40)}" is not imported (line ${line})`);
        }
      }
      const checked = checkRecord(fields);
      if (!checked.ok) {
        summary.bad++;
        out.report(`line ${line}: bad: ${checked.reason}`);
        continue;
      }
      batch.push({ line, row: checked.row });
      if (batch.length >= BATCH) await flush();
      progress();
    }
    await flush();
    await storing;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof SourceError) out.report(err.line ? `line ${err.line}: ${err.message}` : err.message);
    else if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') out.report(`cannot read ${path} (${code})`);
    else throw err;
    // What was read before the problem is stored; a second run after fixing the file skips it.
    await flush();
    await storing;
    summary.failed = true;
  }
  return summary;
}

export function summaryLine(s: ImportSummary): string {
  return `imported ${s.imported}, skipped ${s.skipped}, bad ${s.bad}${s.failed ? ' (stopped early: see above)' : ''}`;
}
