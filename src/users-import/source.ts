// Reading an import file as a stream of records, each with the line it
// starts on: a JSON array of objects (stream-json) or CSV with a header row
// (csv-parse). The format comes from the extension (.json, .csv), else from
// the first character ('[' is JSON). Records are pulled one at a time, so
// the file is read no faster than rows are stored (bounded memory).
import { parse as parseCsv } from 'csv-parse';
import { constants, createReadStream } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import streamArray from 'stream-json/streamers/stream-array.js';

export interface SourceRecord {
  line: number;
  /** The fields, or why the record is not one (a JSON element that is not an object, a CSV row of the wrong width). */
  fields: Record<string, unknown> | string;
}

/** A problem with the file itself (not one row): the import stops there. */
export class SourceError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(message);
    this.name = 'SourceError';
  }
}

/** Longest value a field may have; a longer string stops a JSON import (the parser would hold it whole). */
const MAX_VALUE_CHARS = 64 * 1024;

export type Format = 'json' | 'csv';

async function sniff(path: string): Promise<Format> {
  const ext = extname(path).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.csv') return 'csv';
  const stream = createReadStream(path, { start: 0, end: 4095 });
  let head = '';
  for await (const chunk of stream) head += (chunk as Buffer).toString('utf8');
  return /^\uFEFF?\s*\[/.test(head) ? 'json' : 'csv';
}

export async function openSource(path: string): Promise<{ format: Format; records: AsyncIterable<SourceRecord>; columns?: () => string[] }> {
  await access(path, constants.R_OK);
  if ((await stat(path)).isDirectory()) throw Object.assign(new Error(`${path} is a directory`), { code: 'EISDIR' });
  const format = await sniff(path);
  const input = createReadStream(path, { highWaterMark: 64 * 1024 });
  return format === 'json' ? { format, records: jsonRecords(input) } : csvRecords(input);
}

const NL = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Passes the bytes through and notes the line on which each element of the
 * top-level array starts (stream-json reports no positions). A small state
 * machine: depth, in a string, after an escape, expecting an element.
 */
class ElementLines extends Transform {
  readonly starts: number[] = [];
  line = 1;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private expecting = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === NL) this.line++;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.inString = false;
        continue;
      }
      if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
      if (this.depth === 1 && this.expecting && b !== 0x5d) {
        this.starts.push(this.line);
        this.expecting = false;
      }
      if (b === QUOTE) this.inString = true;
      else if (b === 0x5b || b === 0x7b) {
        this.depth++;
        if (this.depth === 1) this.expecting = true;
      } else if (b === 0x5d || b === 0x7d) this.depth--;
      else if (b === 0x2c && this.depth === 1) this.expecting = true;
    }
    done(null, chunk);
  }
}

async function* jsonRecords(input: Readable): AsyncGenerator<SourceRecord> {
  const lines = new ElementLines();
  const parsed = input.pipe(lines).pipe(
    streamArray.withParserAsStream({
      // An import row is flat: deep nesting or huge values are not a users export.
      maxDepth: 8,
      maxPackedLength: MAX_VALUE_CHARS,
    } as never),
  );
  input.on('error', (err) => parsed.destroy(err));
  try {
    for await (const item of parsed as AsyncIterable<{ key: number; value: unknown }>) {
      const line = lines.starts.shift() ?? lines.line;
      const v = item.value;
      yield { line, fields: v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : 'is not an object' };
    }
  } catch (err) {
    throw new SourceError(`the file is not a JSON array of objects (${(err as Error).message.split('\n')[0]})`, lines.line);
  } finally {
    input.destroy();
  }
}

function csvRecords(input: Readable): { format: 'csv'; records: AsyncIterable<SourceRecord>; columns: () => string[] } {
  let header: string[] = [];
  const parser = input.pipe(
    parseCsv({
      bom: true,
      // Empty lines come as one empty field and are skipped below, counted: that is how lines are numbered
      // (csv-parse's per-record `info` costs more than the rest of the import's parsing).
      skip_empty_lines: false,
      // Width is checked per row here (a bad row is reported, not fatal).
      relax_column_count: true,
      max_record_size: MAX_VALUE_CHARS * 8,
    }),
  );
  input.on('error', (err) => parser.destroy(err));
  async function* records(): AsyncGenerator<SourceRecord> {
    /** The line the next record starts on. */
    let next = 1;
    try {
      for await (const record of parser as AsyncIterable<string[]>) {
        const line = next;
        // A quoted field may span lines.
        let inside = 0;
        for (const f of record) if (f.includes('\n')) inside += f.split('\n').length - 1;
        next = line + inside + 1;
        if (record.length === 1 && record[0]!.trim() === '') continue;
        if (header.length === 0) {
          header = record.map((h) => h.trim().toLowerCase());
          if (!header.includes('username')) throw new SourceError('the first row must be a header naming the columns (username, email, …)', line);
          continue;
        }
        if (record.length !== header.length) {
          yield { line, fields: `has ${record.length} fields where the header has ${header.length}` };
          continue;
        }
        const fields: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
        for (let i = 0; i < header.length; i++) fields[header[i]!] = record[i];
        yield { line, fields };
      }
    } catch (err) {
      if (err instanceof SourceError) throw err;
      throw new SourceError(`the file is not valid CSV (${(err as Error).message.split('\n')[0]})`, next);
    } finally {
      input.destroy();
    }
  }
  return { format: 'csv', records: records(), columns: () => header };
}
