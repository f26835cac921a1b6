// TOKEN_PROFILE=fastapi (API.md "Moving over from a FastAPI app"): access
// tokens a resource server written as the FastAPI tutorials teach accepts
// unchanged (sub = username, uid, scopes, no aud), while Gatehouse keeps
// checking them in full and accepts tokens of both profiles. Also the
// issue's report: a correctly signed token whose sub is a username is a 401,
// never a 5xx.
import { decodeJwt, decodeProtectedHeader, SignJWT, type JWTPayload } from 'jose';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { backends, login, makeAdmin, openTestDatabase, registerAndLogin, startApp, TEST_SECRET, type Res, type TestApp, type TestDatabase } from './helpers.js';

const KEY = new TextEncoder().encode(TEST_SECRET);

function assertInvalidToken(r: Res, why: string) {
  assert.equal(r.status, 401, `${why}: ${r.status} ${r.text}`);
  assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/, why);
  assert.equal(r.body.code, 'invalid_token', why);
}

for (const backend of backends()) {
  describe(`token profiles (${backend})`, () => {
    let shared: TestDatabase;
    let fastapi: TestApp;
    let rfc: TestApp;

    before(async () => {
      // Two nodes on one database, one per profile: each must accept the other's tokens.
      shared = await openTestDatabase(backend);
      fastapi = await startApp({ db: shared, env: { TOKEN_PROFILE: 'fastapi' } });
      rfc = await startApp({ db: shared });
    });
    after(async () => {
      await fastapi.close();
      await rfc.close();
      await shared.close();
    });

    test('fastapi profile: sub = username, uid = id, scopes list beside scope, no aud; the rest as in rfc9068', async () => {
      const u = await registerAndLogin(fastapi.http);
      const c = decodeJwt(u.access);
      assert.equal(c.sub, u.username);
      assert.equal(c.uid, u.id);
      assert.deepEqual(c.scopes, ['me', 'posts:write']);
      assert.equal(c.scope, 'me posts:write');
      assert.equal('aud' in c, false);
      for (const claim of ['iss', 'exp', 'iat', 'jti', 'sid', 'client_id', 'auth_time', 'amr']) assert.ok(claim in c, claim);
      assert.equal(decodeProtectedHeader(u.access).typ, 'at+jwt');
      // Narrowed on refresh: the list follows the string.
      const r = await fastapi.http.token({ grant_type: 'refresh_token', refresh_token: u.refresh, scope: 'me' });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(decodeJwt(r.body.access_token).scopes, ['me']);
      // The default profile is unchanged.
      const d = decodeJwt((await login(rfc.http, u.username)).access);
      assert.equal(d.sub, u.id);
      assert.equal(d.aud, 'gatehouse');
      assert.equal('uid' in d || 'scopes' in d, false);
    });

    test('Gatehouse accepts tokens of both profiles, on either node, with the user resolved by id', async () => {
      const u = await registerAndLogin(fastapi.http);
      const other = await login(rfc.http, u.username);
      for (const [node, token] of [[fastapi, u.access], [rfc, u.access], [fastapi, other.access], [rfc, other.access]] as const) {
        const r = await node.http.get('/users/me', token);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.body.id, u.id);
      }
      const post = await rfc.http.post('/posts', { title: 't', body: 'b' }, u.access);
      assert.equal(post.status, 201, post.text);
      assert.equal(post.body.author.id, u.id);
    });

    test('a fastapi-profile token is still fully checked: logout, revocation, disable, scope', async () => {
      const u = await registerAndLogin(fastapi.http);
      // Revocation by jti (RFC 7009) names the user by id in the audit log, not by the username in sub.
      assert.equal((await fastapi.http.request('POST', '/auth/revoke', { form: { token: u.access } })).status, 200);
      assertInvalidToken(await fastapi.http.get('/users/me', u.access), 'revoked');
      await fastapi.core.audit.flush();
      const audit = await fastapi.core.db.query<{ user_id: string }>(`SELECT user_id FROM audit_events WHERE type = 'revoke'`);
      assert.deepEqual(audit.rows.map((r) => r.user_id), [u.id]);
      // Logout ends the session (sid).
      const again = await login(fastapi.http, u.username);
      assert.equal((await fastapi.http.request('POST', '/auth/logout', { token: again.access })).status, 204);
      assertInvalidToken(await fastapi.http.get('/users/me', again.access), 'logged out');
      // Disabled: refused at once.
      const third = await login(fastapi.http, u.username);
      const admin = await makeAdmin(fastapi, await registerAndLogin(fastapi.http));
      assert.equal((await fastapi.http.patch(`/admin/users/${u.id}`, { disabled: true }, admin.access)).status, 200);
      assertInvalidToken(await fastapi.http.get('/users/me', third.access), 'disabled');
      // A user's fastapi token never reaches admin routes.
      const plain = await registerAndLogin(fastapi.http);
      assert.equal((await fastapi.http.get('/admin/users', plain.access)).status, 403);
      // An admin's does, with the scope in both forms.
      const r = await fastapi.http.get('/admin/users', admin.access);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(decodeJwt(admin.access).scopes, ['me', 'posts:write', 'admin']);
    });

    describe('forged with our own key (each refused for its one flaw)', () => {
      let claims: JWTPayload;
      let kid: string;
      let u: Awaited<ReturnType<typeof registerAndLogin>>;
      before(async () => {
        u = await registerAndLogin(fastapi.http);
        claims = decodeJwt(u.access);
        kid = decodeProtectedHeader(u.access).kid!;
      });
      const forge = (change: Record<string, unknown>, drop: string[] = []) => {
        const c: Record<string, unknown> = { ...claims, jti: randomUUID(), ...change };
        for (const k of drop) delete c[k];
        return new SignJWT(c).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid }).sign(KEY);
      };

      test('control: forged exactly like ours, accepted', async () => {
        assert.equal((await fastapi.http.get('/users/me', await forge({}))).status, 200);
      });

      test('no aud and no uid (sub a username): 401, not a 5xx (the issue: was 503)', async () => {
        assertInvalidToken(await fastapi.http.get('/users/me', await forge({}, ['uid'])), 'no uid');
      });

      test('rfc9068 shape with sub = a username (aud present): 401, not a 5xx', async () => {
        assertInvalidToken(await rfc.http.get('/users/me', await forge({ aud: 'gatehouse' }, ['uid', 'scopes'])), 'sub username');
      });

      test('uid not a UUID, or naming nobody: 401', async () => {
        assertInvalidToken(await fastapi.http.get('/users/me', await forge({ uid: u.username })), 'uid username');
        assertInvalidToken(await fastapi.http.get('/users/me', await forge({ uid: randomUUID() })), 'uid of nobody');
      });

      test('scopes list that says more than scope, or is not a list: 401', async () => {
        assertInvalidToken(await fastapi.http.get('/users/me', await forge({ scopes: ['me', 'posts:write', 'admin'] })), 'scopes widened');
        assertInvalidToken(await fastapi.http.get('/users/me', await forge({ scopes: 'me posts:write' })), 'scopes a string');
        assertInvalidToken(await fastapi.http.get('/users/me', await forge({}, ['scopes'])), 'no scopes');
      });

      test('a wrong aud is still refused on a fastapi-shaped token; typ, iss and kid still required', async () => {
        assertInvalidToken(await fastapi.http.get('/users/me', await forge({ aud: 'someone-else' })), 'wrong aud');
        assertInvalidToken(await fastapi.http.get('/users/me', await forge({ iss: 'someone-else' })), 'wrong iss');
        const noTyp = await new SignJWT({ ...claims, jti: randomUUID() }).setProtectedHeader({ alg: 'HS256', kid }).sign(KEY);
        assertInvalidToken(await fastapi.http.get('/users/me', noTyp), 'no typ');
        const noKid = await new SignJWT({ ...claims, jti: randomUUID() }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(KEY);
        assertInvalidToken(await fastapi.http.get('/users/me', noKid), 'no kid');
      });

      test("the tutorial's own token, signed with SECRET_KEY, without a legacy window: 401", async () => {
        const exp = Math.floor(Date.now() / 1000) + 600;
        const tutorial = await new SignJWT({ sub: u.username, exp }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(KEY);
        assertInvalidToken(await fastapi.http.get('/users/me', tutorial), 'tutorial token');
      });
    });
  });
}
