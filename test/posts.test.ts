// The blog: shapes, validation, drafts, pagination (API.md "Blog posts").
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { backends, makeAdmin, registerAndLogin, startApp, type LoggedIn, type TestApp } from './helpers.js';

const POST_KEYS = ['author', 'body', 'created_at', 'id', 'published', 'title', 'updated_at'];

function problemAt(body: { errors?: Array<{ path: string }> }, path: string): boolean {
  return !!body.errors?.some((e) => e.path === path);
}

for (const backend of backends()) {
  describe(`posts (${backend})`, () => {
    let app: TestApp;
    let alice: LoggedIn;
    let bob: LoggedIn;
    before(async () => {
      app = await startApp({ backend });
      alice = await registerAndLogin(app.http);
      bob = await registerAndLogin(app.http);
    });
    after(async () => app?.close());

    test('create: 201, the contract shape, a draft by default', async () => {
      const r = await app.http.post('/posts', { title: 'First', body: 'Hello, world' }, alice.access);
      assert.equal(r.status, 201);
      assert.deepEqual(Object.keys(r.body).sort(), POST_KEYS);
      assert.equal(r.body.published, false);
      assert.deepEqual(r.body.author, { id: alice.id, username: alice.username });
      assert.equal(r.body.created_at, r.body.updated_at);
      assert.match(r.body.id, /^[0-9a-f-]{36}$/);
      assert.ok(!Number.isNaN(Date.parse(r.body.created_at)));
      assert.ok(!r.text.includes(alice.email), 'no email in a post');
    });

    test('create: unknown fields are a 422 naming each (v2: never silently dropped), and nothing is stored', async () => {
      const before = (await app.http.get('/users/me/posts', alice.access)).body.items.length;
      const r = await app.http.post('/posts', { title: 'T', body: 'B', author_id: bob.id, id: randomUUID() }, alice.access);
      assert.equal(r.status, 422, r.text);
      assert.deepEqual(r.body.errors.map((e: { path: string }) => e.path).sort(), ['/author_id', '/id']);
      assert.equal((await app.http.get('/users/me/posts', alice.access)).body.items.length, before);
      const ok = await app.http.post('/posts', { title: 'T', body: 'B' }, alice.access);
      assert.equal(ok.status, 201);
      assert.equal(ok.body.author.id, alice.id);
      assert.deepEqual(Object.keys(ok.body).sort(), POST_KEYS);
    });

    test('timestamps come from the injectable clock', async () => {
      const before = Date.now();
      app.clock.advance(60_000);
      try {
        const r = await app.http.post('/posts', { title: 'Later', body: '' }, alice.access);
        assert.equal(r.status, 201);
        assert.ok(Date.parse(r.body.created_at) >= before + 60_000);
      } finally {
        app.clock.advance(-60_000);
      }
    });

    test('edit: the author changes fields; created_at stays, updated_at moves', async () => {
      const c = await app.http.post('/posts', { title: 'Draft', body: 'v1' }, alice.access);
      app.clock.advance(5_000);
      const e = await app.http.patch(`/posts/${c.body.id}`, { body: 'v2', published: true }, alice.access);
      assert.equal(e.status, 200);
      assert.equal(e.body.title, 'Draft');
      assert.equal(e.body.body, 'v2');
      assert.equal(e.body.published, true);
      assert.equal(e.body.created_at, c.body.created_at);
      assert.ok(Date.parse(e.body.updated_at) >= Date.parse(c.body.updated_at) + 5_000);
      // Nothing changed, nothing moves.
      app.clock.advance(5_000);
      for (const same of [{}, { body: 'v2' }, { title: 'Draft', published: true }]) {
        const r = await app.http.patch(`/posts/${c.body.id}`, same, alice.access);
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, e.body);
      }
      const g = await app.http.get(`/posts/${c.body.id}`);
      assert.equal(g.status, 200);
      assert.deepEqual(g.body, e.body);
    });

    test('drafts: 404 to anonymous and other users, visible to the author with any token and to scope admin', async () => {
      const d = await app.http.post('/posts', { title: 'Secret', body: 'draft' }, alice.access);
      const path = `/posts/${d.body.id}`;
      assert.equal((await app.http.get(path)).status, 404);
      assert.equal((await app.http.get(path, bob.access)).status, 404);
      assert.equal((await app.http.get(path, alice.access)).status, 200);
      const meOnly = await registerAndLogin(app.http);
      const own = await app.http.post('/posts', { title: 'Mine', body: '' }, meOnly.access);
      const narrow = await app.http.token({ grant_type: 'refresh_token', refresh_token: meOnly.refresh, scope: 'me' });
      assert.equal(narrow.body.scope, 'me');
      assert.equal((await app.http.get(`/posts/${own.body.id}`, narrow.body.access_token)).status, 200);
      const admin = await makeAdmin(app, await registerAndLogin(app.http));
      assert.equal((await app.http.get(path, admin.access)).status, 200);
      const adminNoScope = await makeAdmin(app, await registerAndLogin(app.http), 'me posts:write');
      assert.equal((await app.http.get(path, adminNoScope.access)).status, 404);
      // A presented token must still be valid, even on a public route.
      const bad = await app.http.get(path, 'not.a.token');
      assert.equal(bad.status, 401);
      assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    });

    test('delete: 204, then 404', async () => {
      const c = await app.http.post('/posts', { title: 'Bye', body: '', published: true }, alice.access);
      assert.equal((await app.http.delete(`/posts/${c.body.id}`, alice.access)).status, 204);
      assert.equal((await app.http.get(`/posts/${c.body.id}`)).status, 404);
      assert.equal((await app.http.delete(`/posts/${c.body.id}`, alice.access)).status, 404);
      assert.equal((await app.http.patch(`/posts/${c.body.id}`, { title: 'x' }, alice.access)).status, 404);
    });

    test('unknown and malformed ids are 404 problems, never 500', async () => {
      const ids = [randomUUID(), 'nope', '1', "1' OR '1'='1", '00000000-0000-0000-0000-00000000000g', `${randomUUID()}x`, '%20'];
      for (const id of ids) {
        const path = `/posts/${encodeURIComponent(id)}`;
        for (const r of [
          await app.http.get(path),
          await app.http.get(path, alice.access),
          await app.http.patch(path, { title: 'x' }, alice.access),
          await app.http.delete(path, alice.access),
        ]) {
          assert.equal(r.status, 404, `${id}: ${r.status} ${r.text}`);
          assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
          assert.equal(typeof r.body.detail, 'string');
        }
      }
    });

    test('validation: 422 naming the field', async () => {
      const cases: Array<[unknown, string]> = [
        [{ title: '', body: 'x' }, '/title'],
        [{ title: 'x'.repeat(201), body: 'x' }, '/title'],
        [{ title: 'x', body: 'x'.repeat(100_001) }, '/body'],
        [{ body: 'x' }, '/title'],
        [{ title: 'x' }, '/body'],
        [{ title: 'x', body: 'x', published: 'maybe' }, '/published'],
      ];
      for (const [json, path] of cases) {
        const r = await app.http.post('/posts', json, alice.access);
        assert.equal(r.status, 422, `${JSON.stringify(json).slice(0, 80)}: ${r.status}`);
        assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
        assert.ok(problemAt(r.body, path), `${path} named in ${JSON.stringify(r.body.errors)}`);
        assert.equal(typeof r.body.detail, 'string');
      }
      const both = await app.http.post('/posts', { title: '', body: 'x'.repeat(100_001) }, alice.access);
      assert.ok(problemAt(both.body, '/title') && problemAt(both.body, '/body'), 'every failed field named');

      const ok = await app.http.post('/posts', { title: 'x'.repeat(200), body: 'y'.repeat(100_000) }, alice.access);
      assert.equal(ok.status, 201);
      // Characters, not UTF-16 code units or bytes.
      const emoji = await app.http.post('/posts', { title: '😀'.repeat(200), body: '😀'.repeat(100_000) }, alice.access);
      assert.equal(emoji.status, 201, emoji.text.slice(0, 200));
      assert.equal([...emoji.body.title].length, 200);

      const p = await app.http.patch(`/posts/${ok.body.id}`, { title: '' }, alice.access);
      assert.equal(p.status, 422);
      assert.ok(problemAt(p.body, '/title'));
      const p2 = await app.http.patch(`/posts/${ok.body.id}`, { body: 'z'.repeat(100_001) }, alice.access);
      assert.equal(p2.status, 422);
      assert.ok(problemAt(p2.body, '/body'));
      assert.equal((await app.http.get(`/posts/${ok.body.id}`, alice.access)).body.title, 'x'.repeat(200), 'unchanged');
    });

    test('list parameters: limit 1–100, cursor ours, else 422 naming it', async () => {
      // Infinity and overflowing exponents: Ajv coerces them to a non-finite number that passes its own bounds.
      for (const q of ['limit=0', 'limit=101', 'limit=-1', 'limit=abc', 'limit=1.5', 'limit=Infinity', 'limit=-Infinity', 'limit=1e999', 'limit=-9e600']) {
        for (const path of ['/posts', '/users/me/posts']) {
          const r = await app.http.get(`${path}?${q}`, alice.access);
          assert.equal(r.status, 422, `${path}?${q}`);
          assert.ok(problemAt(r.body, '/limit'), `${path}?${q}: ${r.text}`);
        }
      }
      const b64 = (s: string) => Buffer.from(s).toString('base64url');
      const bad = [
        'garbage',
        '!!!',
        b64('{}'),
        b64('[1,2]'),
        b64(JSON.stringify(['2024-01-01T00:00:00.000000Z', 'not-a-uuid'])),
        b64(JSON.stringify(['yesterday', randomUUID()])),
        b64(JSON.stringify(['2024-02-30T00:00:00.000000Z', randomUUID()])),
        b64(JSON.stringify(['0000-01-01T00:00:00.000000Z', randomUUID()])),
        'x'.repeat(500),
      ];
      for (const cursor of bad) {
        for (const path of ['/posts', '/users/me/posts']) {
          const r = await app.http.get(`${path}?cursor=${encodeURIComponent(cursor)}`, alice.access);
          assert.equal(r.status, 422, `${path} cursor ${cursor.slice(0, 40)}: ${r.status} ${r.text}`);
          assert.ok(problemAt(r.body, '/cursor'));
        }
      }
      assert.equal((await app.http.get('/posts?limit=1')).status, 200);
      assert.equal((await app.http.get('/posts?limit=100')).status, 200);
    });

    test('GET /users/me/posts: own posts only, drafts included, newest first', async () => {
      const carol = await registerAndLogin(app.http);
      const made: string[] = [];
      for (let i = 0; i < 5; i++) {
        app.clock.advance(1);
        made.push((await app.http.post('/posts', { title: `c${i}`, body: '', published: i % 2 === 0 }, carol.access)).body.id);
      }
      await app.http.post('/posts', { title: 'not carol', body: '', published: true }, bob.access);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const r: { status: number; body: { items: Array<{ id: string; author: { id: string } }>; next_cursor: string | null } } =
          await app.http.get(`/users/me/posts?limit=2${cursor ? `&cursor=${cursor}` : ''}`, carol.access);
        assert.equal(r.status, 200);
        for (const p of r.body.items) assert.equal(p.author.id, carol.id);
        seen.push(...r.body.items.map((p) => p.id));
        cursor = r.body.next_cursor;
      } while (cursor);
      assert.deepEqual(seen, [...made].reverse());
      const anon = await app.http.get('/users/me/posts');
      assert.equal(anon.status, 401);
    });

    test('GET /posts?author=: that author, published only; unknown author gives an empty page', async () => {
      const dave = await registerAndLogin(app.http);
      await app.http.post('/posts', { title: 'd1', body: '', published: true }, dave.access);
      await app.http.post('/posts', { title: 'd2', body: '' }, dave.access);
      const r = await app.http.get(`/posts?author=${dave.username.toUpperCase()}`);
      assert.equal(r.status, 200);
      assert.deepEqual(
        r.body.items.map((p: { title: string }) => p.title),
        ['d1'],
      );
      const none = await app.http.get('/posts?author=nobody_at_all');
      assert.deepEqual(none.body, { items: [], next_cursor: null });
    });

    test('a deleted user takes their posts along (ON DELETE CASCADE)', async () => {
      const erin = await registerAndLogin(app.http);
      const p = await app.http.post('/posts', { title: 'gone soon', body: '', published: true }, erin.access);
      await app.core.db.query('DELETE FROM users WHERE id = $1', [erin.id]);
      assert.equal((await app.http.get(`/posts/${p.body.id}`)).status, 404);
    });

    test('/openapi.json documents every blog and admin route with its scopes, tags and shapes', async () => {
      const doc = (await app.http.get('/openapi.json')).body;
      const expect: Array<[string, string, string, string[] | null, boolean?]> = [
        ['/posts', 'get', 'posts', null],
        ['/posts', 'post', 'posts', ['posts:write']],
        ['/posts/{id}', 'get', 'posts', [], true],
        ['/posts/{id}', 'patch', 'posts', ['posts:write']],
        ['/posts/{id}', 'delete', 'posts', ['posts:write']],
        ['/users/me/posts', 'get', 'posts', ['me']],
        ['/admin/users', 'get', 'admin', ['admin']],
        ['/admin/users/{id}', 'patch', 'admin', ['admin']],
      ];
      for (const [path, method, tag, scopes, optional] of expect) {
        const op = doc.paths[path]?.[method];
        assert.ok(op, `${method} ${path} documented`);
        assert.deepEqual(op.tags, [tag]);
        assert.ok(op.summary, `${method} ${path} has a summary`);
        if (scopes === null) assert.equal(op.security, undefined, `${method} ${path} is public`);
        else assert.deepEqual(op.security, [{ OAuth2PasswordBearer: scopes }, ...(optional ? [{}] : [])]);
        const ok = op.responses['200'] ?? op.responses['201'] ?? op.responses['204'];
        assert.ok(ok, `${method} ${path} documents its success`);
      }
      const post = doc.paths['/posts/{id}'].get.responses['200'].content['application/json'].schema;
      assert.deepEqual(Object.keys(post.properties).sort(), POST_KEYS);
      assert.deepEqual(doc.paths['/posts'].get.responses['200'].content['application/json'].schema.required.sort(), ['items', 'next_cursor']);
    });

    test('pagination: 250 posts walked with limit=7 while posts are added: every published post once, in order', async () => {
      const writer = await registerAndLogin(app.http);
      const published = new Set<string>();
      // 20 posts written in the same microsecond: the id breaks the tie.
      const tie = new Date(app.clock.now());
      for (let i = 0; i < 20; i++) {
        const id = randomUUID();
        await app.core.db.query(
          `INSERT INTO posts (id, author_id, title, body, published, created_at, updated_at) VALUES ($1, $2, $3, '', $4, $5, $5)`,
          [id, writer.id, `tie ${i}`, i % 4 !== 0, tie],
        );
        if (i % 4 !== 0) published.add(id);
      }
      for (let i = 0; i < 230; i++) {
        if (i % 3 === 0) app.clock.advance(1);
        const r = await app.http.post('/posts', { title: `p${i}`, body: `body ${i}`, published: i % 5 !== 0 }, writer.access);
        assert.equal(r.status, 201);
        if (r.body.published) published.add(r.body.id);
      }
      // Every published post of the database (other tests' too): what a full walk must give.
      const expected = (await app.core.db.query<{ id: string }>('SELECT id FROM posts WHERE published')).rows.map((r) => r.id);
      const walk = async (query: string) => {
        const added = new Set<string>();
        const seen: Array<{ id: string; created_at: string; published: boolean; author: { id: string } }> = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const r: { status: number; body: { items: typeof seen; next_cursor: string | null } } = await app.http.get(
            `/posts?${query}limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
          );
          assert.equal(r.status, 200);
          assert.ok(r.body.items.length <= 7);
          seen.push(...r.body.items);
          cursor = r.body.next_cursor;
          pages++;
          // Someone keeps writing while we read, sometimes twice in one millisecond.
          for (let k = 0; k < (pages % 4 === 0 ? 2 : 1); k++) {
            const n = await app.http.post('/posts', { title: `new ${pages}.${k}`, body: '', published: true }, writer.access);
            added.add(n.body.id);
          }
        } while (cursor && pages < 500);
        const ids = seen.map((p) => p.id);
        assert.equal(new Set(ids).size, ids.length, 'no post twice');
        for (const p of seen) assert.ok(p.published);
        for (const id of ids) assert.ok(!added.has(id), 'a post written during the walk never shifts the pages ahead');
        for (let i = 1; i < seen.length; i++) {
          assert.ok(Date.parse(seen[i - 1]!.created_at) >= Date.parse(seen[i]!.created_at), 'newest first');
        }
        return { seen, ids, pages, added };
      };

      const all = await walk('');
      assert.deepEqual([...all.ids].sort(), [...expected].sort(), 'every published post exactly once');
      assert.equal(all.pages, Math.ceil(expected.length / 7), 'no empty last page');
      // The writer's posts only, including those written during the first walk.
      const mine = await walk(`author=${writer.username}&`);
      const mineExpected = [...published, ...all.added];
      assert.deepEqual([...mine.ids].sort(), mineExpected.sort());
      assert.equal(mine.pages, Math.ceil(mineExpected.length / 7));
      assert.deepEqual(
        mine.ids.filter((id) => published.has(id)),
        all.ids.filter((id) => published.has(id)),
        'the same order filtered or not',
      );
      const seen = all.seen;
      // Within the tie, the order is by id, descending, and stable across pages.
      const tied = seen.filter((p) => Date.parse(p.created_at) === tie.getTime()).map((p) => p.id);
      assert.deepEqual(tied, [...tied].sort().reverse());
      assert.equal(tied.length, 15);
    });
  });
}
