// Scopes and roles (API.md "Scopes and roles"): what the token endpoint
// grants, and the full caller × action matrix of the blog and the admin API.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends, login, makeAdmin, registerAndLogin, startApp, type Res, type TestApp } from './helpers.js';

type Action = 'list' | 'readPublished' | 'readDraft' | 'create' | 'edit' | 'delete' | 'adminList' | 'adminPatch';
const ACTIONS: Action[] = ['list', 'readPublished', 'readDraft', 'create', 'edit', 'delete', 'adminList', 'adminPatch'];

// The scope each protected action's route needs (for the 403 header).
const ROUTE_SCOPE: Partial<Record<Action, string>> = {
  create: 'posts:write',
  edit: 'posts:write',
  delete: 'posts:write',
  adminList: 'admin',
  adminPatch: 'admin',
};

type Caller = 'anonymous' | 'author' | 'otherUser' | 'admin' | 'authorWithoutPostsWrite' | 'adminWithoutAdmin' | 'adminWithOnlyAdmin';

// Expected status of every cell. The edited and deleted post is always the author's.
const MATRIX: Record<Caller, Record<Action, number>> = {
  anonymous: { list: 200, readPublished: 200, readDraft: 404, create: 401, edit: 401, delete: 401, adminList: 401, adminPatch: 401 },
  author: { list: 200, readPublished: 200, readDraft: 200, create: 201, edit: 200, delete: 204, adminList: 403, adminPatch: 403 },
  otherUser: { list: 200, readPublished: 200, readDraft: 404, create: 201, edit: 403, delete: 403, adminList: 403, adminPatch: 403 },
  admin: { list: 200, readPublished: 200, readDraft: 200, create: 201, edit: 200, delete: 204, adminList: 200, adminPatch: 200 },
  // The author's own token, scope "me": may still read the author's draft.
  authorWithoutPostsWrite: { list: 200, readPublished: 200, readDraft: 200, create: 403, edit: 403, delete: 403, adminList: 403, adminPatch: 403 },
  // An admin's token with "me posts:write": an ordinary user's powers.
  adminWithoutAdmin: { list: 200, readPublished: 200, readDraft: 404, create: 201, edit: 403, delete: 403, adminList: 403, adminPatch: 403 },
  // An admin's token with "admin" only: administers users, reads drafts, writes nothing.
  adminWithOnlyAdmin: { list: 200, readPublished: 200, readDraft: 200, create: 403, edit: 403, delete: 403, adminList: 200, adminPatch: 200 },
};

for (const backend of backends()) {
  describe(`scopes at the token endpoint (${backend})`, () => {
    let app: TestApp;
    before(async () => {
      app = await startApp({ backend });
    });
    after(async () => app?.close());

    test('no scope requested: everything the role allows', async () => {
      const u = await registerAndLogin(app.http);
      assert.equal(u.scope, 'me posts:write');
      const a = await makeAdmin(app, await registerAndLogin(app.http));
      assert.equal(a.scope, 'me posts:write admin');
    });

    test('a scope the role does not allow, or an unknown one: 400 invalid_scope', async () => {
      const u = await registerAndLogin(app.http);
      for (const scope of ['admin', 'me admin', 'bogus', 'me bogus', 'posts:read']) {
        const r = await app.http.token({ grant_type: 'password', username: u.username, password: u.password, scope });
        assert.equal(r.status, 400, scope);
        assert.equal(r.body.error, 'invalid_scope', scope);
      }
      const ok = await app.http.token({ grant_type: 'password', username: u.username, password: u.password, scope: 'posts:write' });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.scope, 'posts:write');
    });

    test('refresh: a narrower scope applies; a wider one is invalid_scope', async () => {
      const u = await registerAndLogin(app.http, undefined, 'me posts:write');
      const narrow = await app.http.token({ grant_type: 'refresh_token', refresh_token: u.refresh, scope: 'me' });
      assert.equal(narrow.status, 200);
      assert.equal(narrow.body.scope, 'me');
      assert.equal((await app.http.post('/posts', { title: 't', body: '' }, narrow.body.access_token)).status, 403);
      const wider = await app.http.token({ grant_type: 'refresh_token', refresh_token: narrow.body.refresh_token, scope: 'me admin' });
      assert.equal(wider.status, 400);
      assert.equal(wider.body.error, 'invalid_scope');
    });
  });

  describe(`authorization matrix (${backend})`, () => {
    let app: TestApp;
    const tokens: Partial<Record<Caller, string>> = {};
    let authorToken: string;
    let publishedId: string;
    let draftId: string;
    let victimId: string;

    before(async () => {
      app = await startApp({ backend });
      const author = await registerAndLogin(app.http);
      const other = await registerAndLogin(app.http);
      const admin = await makeAdmin(app, await registerAndLogin(app.http));
      const victim = await registerAndLogin(app.http);
      authorToken = author.access;
      victimId = victim.id;
      tokens.author = author.access;
      tokens.otherUser = other.access;
      tokens.admin = admin.access;
      tokens.authorWithoutPostsWrite = (await login(app.http, author.username, author.password, 'me')).access;
      tokens.adminWithoutAdmin = (await login(app.http, admin.username, admin.password, 'me posts:write')).access;
      tokens.adminWithOnlyAdmin = (await login(app.http, admin.username, admin.password, 'admin')).access;
      publishedId = (await app.http.post('/posts', { title: 'Public', body: 'p', published: true }, authorToken)).body.id;
      draftId = (await app.http.post('/posts', { title: 'Draft', body: 'd' }, authorToken)).body.id;
    });
    after(async () => app?.close());

    async function perform(action: Action, token: string | undefined): Promise<Res> {
      const freshPost = async () => (await app.http.post('/posts', { title: 'Target', body: 't', published: true }, authorToken)).body.id;
      switch (action) {
        case 'list':
          return app.http.get('/posts', token);
        case 'readPublished':
          return app.http.get(`/posts/${publishedId}`, token);
        case 'readDraft':
          return app.http.get(`/posts/${draftId}`, token);
        case 'create':
          return app.http.post('/posts', { title: 'New', body: 'n' }, token);
        case 'edit':
          return app.http.patch(`/posts/${await freshPost()}`, { title: 'Edited' }, token);
        case 'delete':
          return app.http.delete(`/posts/${await freshPost()}`, token);
        case 'adminList':
          return app.http.get('/admin/users', token);
        case 'adminPatch':
          return app.http.patch(`/admin/users/${victimId}`, { disabled: false }, token);
      }
    }

    for (const caller of Object.keys(MATRIX) as Caller[]) {
      test(`${caller}`, async () => {
        const failures: string[] = [];
        for (const action of ACTIONS) {
          const expected = MATRIX[caller][action];
          const r = await perform(action, tokens[caller]);
          if (r.status !== expected) {
            failures.push(`${action}: expected ${expected}, got ${r.status} ${r.text.slice(0, 200)}`);
            continue;
          }
          const www = r.headers.get('www-authenticate');
          if (expected === 401) {
            assert.equal(www, 'Bearer realm="gatehouse"', `${action}: 401 challenge`);
          }
          if (expected >= 400) {
            assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/, action);
            assert.equal(typeof r.body.detail, 'string', action);
          }
          if (expected === 403) {
            const needed = ROUTE_SCOPE[action]!;
            const scopes = caller === 'anonymous' ? [] : scopesOf(tokens[caller]!);
            if (!scopes.includes(needed)) {
              assert.equal(www, `Bearer realm="gatehouse", error="insufficient_scope", scope="${needed}"`, `${caller} ${action}`);
            } else if (caller === 'adminWithoutAdmin') {
              // An admin could get the missing scope: the challenge says which.
              assert.match(www ?? '', /error="insufficient_scope", scope="posts:write admin"/, `${caller} ${action}`);
            } else {
              assert.equal(www, null, `${caller} ${action}: not a scope problem`);
            }
          }
        }
        assert.deepEqual(failures, []);
      });
    }

    test('the edits and deletes that were refused changed nothing', async () => {
      const r = await app.http.get(`/posts/${publishedId}`);
      assert.equal(r.body.title, 'Public');
      const mine = await app.http.get('/users/me/posts?limit=100', authorToken);
      const titles = mine.body.items.map((p: { title: string }) => p.title);
      // Every refused edit left a "Target"; only author and admin edits say "Edited".
      assert.equal(titles.filter((t: string) => t === 'Edited').length, 2);
    });
  });
}

function scopesOf(jwt: string): string[] {
  const payload = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as { scope: string };
  return payload.scope.split(' ');
}
