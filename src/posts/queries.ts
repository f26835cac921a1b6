// Posts in PostgreSQL: the same SQL on the server and on PGlite.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/client.js';
import { cursorTs, page, type Keyset } from '../http/pagination.js';

export interface PostRow {
  id: string;
  author_id: string;
  author_username: string;
  title: string;
  body: string;
  published: boolean;
  created_at: Date;
  updated_at: Date;
  /** created_at as a cursor carries it (full precision). */
  cursor_ts: string;
}

export interface PublicPost {
  id: string;
  title: string;
  body: string;
  published: boolean;
  author: { id: string; username: string };
  created_at: string;
  updated_at: string;
}

export function toPublicPost(p: PostRow): PublicPost {
  return {
    id: p.id,
    title: p.title,
    body: p.body,
    published: p.published,
    author: { id: p.author_id, username: p.author_username },
    created_at: p.created_at.toISOString(),
    updated_at: p.updated_at.toISOString(),
  };
}

const COLUMNS = `p.id, p.author_id, u.username AS author_username, p.title, p.body, p.published,
  p.created_at, p.updated_at, ${cursorTs('p.created_at')} AS cursor_ts`;

export interface ListOptions {
  limit: number;
  after?: Keyset;
  /** Only this author's posts. */
  authorId?: string;
  /** Drafts too (the author's own list). */
  includeDrafts?: boolean;
}

/** One page, newest first; keyset on (created_at, id) so pages stay put while posts are added. */
export async function listPosts(db: Queryable, o: ListOptions) {
  const where: string[] = [];
  const params: unknown[] = [];
  if (!o.includeDrafts) where.push('p.published');
  if (o.authorId !== undefined) {
    params.push(o.authorId);
    where.push(`p.author_id = $${params.length}`);
  }
  if (o.after) {
    params.push(o.after.ts, o.after.id);
    where.push(`(p.created_at, p.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
  }
  params.push(o.limit + 1);
  const r = await db.query<PostRow>(
    `SELECT ${COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id
     ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY p.created_at DESC, p.id DESC
     LIMIT $${params.length}`,
    params,
  );
  return page(r.rows, o.limit, toPublicPost);
}

export async function findPost(db: Queryable, id: string): Promise<PostRow | undefined> {
  const r = await db.query<PostRow>(`SELECT ${COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id WHERE p.id = $1`, [id]);
  return r.rows[0];
}

export async function createPost(
  db: Queryable,
  p: { authorId: string; title: string; body: string; published: boolean; now: Date },
): Promise<PostRow> {
  const r = await db.query<PostRow>(
    `WITH p AS (
       INSERT INTO posts (id, author_id, title, body, published, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *
     )
     SELECT ${COLUMNS} FROM p JOIN users u ON u.id = p.author_id`,
    [randomUUID(), p.authorId, p.title, p.body, p.published, p.now],
  );
  return r.rows[0]!;
}

export interface PostChanges {
  title?: string;
  body?: string;
  published?: boolean;
}

/**
 * Applies `changes` if the post exists and `editor` may edit it (its author,
 * or anyone when `anyAuthor`), in one statement: no window between the check
 * and the write. `undefined` when nothing matched; the caller tells 404 from 403.
 */
export async function updatePost(
  db: Queryable,
  id: string,
  editor: { userId: string; anyAuthor: boolean },
  changes: PostChanges,
  now: Date,
): Promise<PostRow | undefined> {
  const r = await db.query<PostRow>(
    `WITH p AS (
       UPDATE posts SET
         title = COALESCE($4, title),
         body = COALESCE($5, body),
         published = COALESCE($6, published),
         -- A PATCH that changes nothing leaves updated_at alone.
         updated_at = CASE
           WHEN (COALESCE($4, title), COALESCE($5, body), COALESCE($6, published)) IS DISTINCT FROM (title, body, published)
           THEN $7 ELSE updated_at END
       WHERE id = $1 AND ($3 OR author_id = $2)
       RETURNING *
     )
     SELECT ${COLUMNS} FROM p JOIN users u ON u.id = p.author_id`,
    [id, editor.userId, editor.anyAuthor, changes.title ?? null, changes.body ?? null, changes.published ?? null, now],
  );
  return r.rows[0];
}

/** Deletes under the same rule as updatePost; true when a post was deleted. */
export async function deletePost(db: Queryable, id: string, editor: { userId: string; anyAuthor: boolean }): Promise<boolean> {
  const r = await db.query('DELETE FROM posts WHERE id = $1 AND ($3 OR author_id = $2)', [id, editor.userId, editor.anyAuthor]);
  return r.rowCount > 0;
}

export async function postExists(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('SELECT 1 FROM posts WHERE id = $1', [id])).rows.length > 0;
}

/** The id of the user with this username (as given in `?author=`), if any. */
export async function userIdByUsername(db: Queryable, normalizedUsername: string): Promise<string | undefined> {
  const r = await db.query<{ id: string }>('SELECT id FROM users WHERE lower(username) = $1', [normalizedUsername]);
  return r.rows[0]?.id;
}
