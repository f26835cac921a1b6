// Keyset pagination shared by the list endpoints: an opaque cursor naming
// the last row of a page by (created_at, id), the order every list uses.
// Rows inserted while a client walks the pages never shift the pages it has
// not read yet, which OFFSET could not promise.
import { Type } from '@fastify/type-provider-typebox';
import { validationFailed } from '../auth/errors.js';
import { isUuid } from '../auth/ids.js';

const DEFAULT_LIMIT = 20;

/** The `limit` and `cursor` query parameters of every list endpoint. */
export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_LIMIT, description: 'Page size, 1–100' })),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: 'The `next_cursor` of the previous page' })),
};

export interface Keyset {
  /** created_at to the microsecond, ISO 8601 UTC (`2024-01-02T03:04:05.123456Z`). */
  ts: string;
  id: string;
}

const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;


/**
 * A SQL expression giving `column` as the text a cursor carries: the full
 * microsecond precision of timestamptz, so a cursor names its row exactly
 * whatever wrote the timestamp.
 */
export function cursorTs(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

export function encodeCursor(k: Keyset): string {
  return Buffer.from(JSON.stringify([k.ts, k.id])).toString('base64url');
}

const badCursor = () =>
  validationFailed([{ path: '/cursor', message: 'is not a valid cursor' }]);

/** The keyset a cursor names; a 422 naming /cursor for anything that is not one of ours. */
/** A list endpoint's query → its page size and the position after which the page starts. */
export function pageRequest(q: { limit?: number; cursor?: string }): { limit: number; after?: Keyset } {
  return { limit: q.limit ?? DEFAULT_LIMIT, after: q.cursor === undefined ? undefined : decodeCursor(q.cursor) };
}

export function decodeCursor(cursor: string): Keyset {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw badCursor();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw badCursor();
  const [ts, id] = parsed as unknown[];
  if (typeof ts !== 'string' || typeof id !== 'string' || !TS_RE.test(ts) || !isUuid(id)) throw badCursor();
  // A real instant (no 30 February), or PostgreSQL would refuse the cast with a 500.
  const ms = new Date(`${ts.slice(0, 23)}Z`);
  if (Number.isNaN(ms.getTime()) || ms.getUTCFullYear() < 1 || ms.toISOString() !== `${ts.slice(0, 23)}Z`) throw badCursor();
  return { ts, id };
}

/**
 * Turns `limit + 1` fetched rows into a page: the first `limit` rows and the
 * cursor after the last of them, or null when nothing follows.
 */
export function page<R extends { cursor_ts: string; id: string }, T>(
  rows: R[],
  limit: number,
  map: (row: R) => T,
): { items: T[]; next_cursor: string | null } {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  return {
    items: kept.map(map),
    next_cursor: more && last ? encodeCursor({ ts: last.cursor_ts, id: last.id }) : null,
  };
}
