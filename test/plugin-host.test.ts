// Gatehouse embedded in someone else's Fastify app: a small notes app with
// its own scope (`notes:write`), its own protected routes, its own error
// handler and 404 handler, registers the plugin the way a host would. The
// plugin must work there (register, login, refresh, logout, RFC 6750
// refusals with the host's realm) and leave everything of the host's alone.
// The guard fails closed: a protected route registered before the plugin
// is guarded all the same; a plugin registered where it cannot guard every
// route, or a route asking for a scope nobody declared, stops start-up.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { gatehouse, principalOf, smtpTransport, type GatehouseOptions, type MailTransport } from '../src/auth/plugin.js';
import { MovableClock } from '../src/clock.js';
import { eventually, HttpClient, openTestDatabase, STRONG_PASSWORD, TEST_SECRET, uniqueName, type TestDatabase } from './helpers.js';
import { MailCatcher, RESET, tokenOf } from './mail-catcher.js';

const REALM = 'notes-app';

function options(tdb: TestDatabase, extra: Partial<GatehouseOptions> = {}): GatehouseOptions {
  return {
    database: tdb.db,
    secretKey: TEST_SECRET,
    clock: new MovableClock(),
    realm: REALM,
    issuer: 'https://notes.example',
    audience: 'notes',
    scopes: { 'notes:write': 'Write your notes' },
    roles: { user: ['notes:write'] },
    limits: { tokenPerMinute: 0, registerPerHour: 0, failedLoginsPerAccount: 0 },
    ...extra,
  };
}

/** The host: its own error format, 404 handler, routes before and after the plugin. */
async function notesApp(tdb: TestDatabase, extra: Partial<GatehouseOptions> = {}): Promise<{ app: FastifyInstance; http: HttpClient }> {
  const app = Fastify();
  app.setErrorHandler((err: Error, _request, reply) => reply.code(418).send({ host_error: err.message }));
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ host_not_found: true }));
  // Registered before the plugin: still guarded.
  app.get('/early', { config: { auth: { scopes: ['me'] } } }, async (request) => ({ user: principalOf(request).username }));
  await app.register(gatehouse, options(tdb, extra));
  const notes: string[] = [];
  app.post('/notes', { config: { auth: { scopes: ['notes:write'] } } }, async (request) => {
    notes.push(String((request.body as { text?: unknown }).text));
    return { count: notes.length, by: principalOf(request).username };
  });
  app.get('/public', async () => ({ ok: true }));
  app.get('/boom', async () => {
    throw new Error('the host handles its own errors');
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, http: new HttpClient(url) };
}

describe('the plugin in a host app', () => {
  let tdb: TestDatabase;
  let app: FastifyInstance;
  let http: HttpClient;

  before(async () => {
    tdb = await openTestDatabase('pglite');
    ({ app, http } = await notesApp(tdb));
  });
  after(async () => {
    await app.close();
    await tdb.close();
  });

  test('register, login, refresh and logout under /auth; the host scope is granted by role', async () => {
    const username = uniqueName('host');
    const reg = await http.post('/auth/register', { username, email: `${username}@example.com`, password: STRONG_PASSWORD });
    assert.equal(reg.status, 201, reg.text);
    const login = await http.token({ grant_type: 'password', username, password: STRONG_PASSWORD });
    assert.equal(login.status, 200, login.text);
    assert.equal(login.body.scope, 'me notes:write');
    const note = await http.request('POST', '/notes', { json: { text: 'hi' }, token: login.body.access_token });
    assert.equal(note.status, 200, note.text);
    assert.equal(note.body.by, username);
    const refreshed = await http.token({ grant_type: 'refresh_token', refresh_token: login.body.refresh_token });
    assert.equal(refreshed.status, 200, refreshed.text);
    const out = await http.request('POST', '/auth/logout', { token: refreshed.body.access_token });
    assert.equal(out.status, 204);
    const after = await http.request('POST', '/notes', { json: { text: 'again' }, token: refreshed.body.access_token });
    assert.equal(after.status, 401);
    assert.match(after.headers.get('www-authenticate') ?? '', new RegExp(`^Bearer realm="${REALM}", error="invalid_token"`));
  });

  test('the host route: 401 without a token, 403 insufficient_scope with the RFC 6750 challenge', async () => {
    const anon = await http.request('POST', '/notes', { json: { text: 'x' } });
    assert.equal(anon.status, 401);
    assert.equal(anon.headers.get('www-authenticate'), `Bearer realm="${REALM}"`);
    assert.match(anon.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(anon.body.code, 'not_authenticated');

    const username = uniqueName('narrow');
    await http.post('/auth/register', { username, email: `${username}@example.com`, password: STRONG_PASSWORD });
    const narrow = await http.token({ grant_type: 'password', username, password: STRONG_PASSWORD, scope: 'me' });
    assert.equal(narrow.body.scope, 'me');
    const r = await http.request('POST', '/notes', { json: { text: 'x' }, token: narrow.body.access_token });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('www-authenticate'), `Bearer realm="${REALM}", error="insufficient_scope", scope="notes:write"`);
    assert.equal(r.body.code, 'insufficient_scope');
    // Unknown and admin-only scopes are refused at login.
    const wider = await http.token({ grant_type: 'password', username, password: STRONG_PASSWORD, scope: 'posts:write' });
    assert.equal(wider.status, 400);
    assert.equal(wider.body.error, 'invalid_scope');
  });

  test('a protected route registered before the plugin is guarded all the same', async () => {
    const anon = await http.get('/early');
    assert.equal(anon.status, 401);
    assert.equal(anon.headers.get('www-authenticate'), `Bearer realm="${REALM}"`);
    const username = uniqueName('early');
    await http.post('/auth/register', { username, email: `${username}@example.com`, password: STRONG_PASSWORD });
    const login = await http.token({ grant_type: 'password', username, password: STRONG_PASSWORD });
    const ok = await http.get('/early', login.body.access_token);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.user, username);
  });

  test("the host's error handler, 404 handler and parsers stay the host's", async () => {
    const boom = await http.get('/boom');
    assert.equal(boom.status, 418);
    assert.deepEqual(boom.body, { host_error: 'the host handles its own errors' });
    const missing = await http.get('/nowhere');
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { host_not_found: true });
    assert.equal((await http.get('/public')).status, 200);
    // Form bodies are parsed for /auth only: the host never registered a form parser.
    const form = await http.request('POST', '/notes', { form: { text: 'x' } });
    assert.equal(form.status, 401, 'the guard answers first');
    const username = uniqueName('form');
    await http.post('/auth/register', { username, email: `${username}@example.com`, password: STRONG_PASSWORD });
    const login = await http.token({ grant_type: 'password', username, password: STRONG_PASSWORD });
    const formWithToken = await http.request('POST', '/notes', { form: { text: 'x' }, token: login.body.access_token });
    assert.equal(formWithToken.status, 418, "the host's own 415, through the host's own handler");
    // The plugin's own errors are in the contract's formats.
    const bad = await http.token({ grant_type: 'password', username, password: 'wrong-Password-1' });
    assert.equal(bad.status, 400);
    assert.deepEqual(Object.keys(bad.body).sort(), ['error', 'error_description']);
    assert.equal(bad.body.error, 'invalid_grant');
    const weak = await http.post('/auth/register', { username: uniqueName('weak'), email: 'weak@example.com', password: 'short' });
    assert.equal(weak.status, 422);
    assert.equal(weak.body.code, 'validation_failed');
    assert.ok(weak.body.errors.some((e: { path: string }) => e.path === '/password'));
  });

  test('mail from the package: smtpTransport delivers a reset link built on publicUrl; a transport of its own gets every mail', async () => {
    const smtp = await new MailCatcher().start();
    const sent: string[] = [];
    const own: MailTransport = { description: 'the host’s queue', send: async (mail) => void sent.push(mail.to) };
    const [viaSmtp, viaOwn] = [Fastify(), Fastify()];
    try {
      const mail = { from: 'Notes <no-reply@notes.example>', productName: 'Notes' };
      await viaSmtp.register(gatehouse, options(tdb, { publicUrl: 'https://notes.example', mail: { ...mail, transport: smtpTransport(smtp.url) } }));
      await viaOwn.register(gatehouse, options(tdb, { publicUrl: 'https://notes.example', mail: { ...mail, transport: own } }));
      const smtpHttp = new HttpClient(await viaSmtp.listen({ host: '127.0.0.1', port: 0 }));
      const ownHttp = new HttpClient(await viaOwn.listen({ host: '127.0.0.1', port: 0 }));
      const username = uniqueName('mailhost');
      const email = `${username}@example.com`;
      assert.equal((await smtpHttp.post('/auth/register', { username, email, password: STRONG_PASSWORD })).status, 201);
      assert.equal((await smtpHttp.post('/auth/password-reset', { email })).status, 202);
      const reset = await smtp.waitFor(email, RESET);
      assert.match(reset.subject, /Notes/);
      assert.ok(reset.text.includes(`https://notes.example/reset-password#token=${tokenOf(reset)}`), reset.text);
      const other = uniqueName('ownmail');
      assert.equal((await ownHttp.post('/auth/register', { username: other, email: `${other}@example.com`, password: STRONG_PASSWORD })).status, 201);
      assert.ok(await eventually(async () => sent.includes(`${other}@example.com`), 5000), 'the verification mail went through the host’s transport');
    } finally {
      await viaSmtp.close();
      await viaOwn.close();
      await smtp.stop();
    }
  });

  test('the decorated API: grants usable from the host’s own endpoints', async () => {
    const core = app.gatehouse;
    const username = uniqueName('api');
    await http.post('/auth/register', { username, email: `${username}@example.com`, password: STRONG_PASSWORD });
    const t = await core.grants.password({ username, password: STRONG_PASSWORD }, { ip: '127.0.0.1', userAgent: 'test' });
    assert.equal(t.token_type, 'bearer');
    const claims = core.tokens.verify(t.access_token);
    assert.equal(claims.iss, 'https://notes.example');
    assert.equal(claims.aud, 'notes');
    await assert.rejects(
      core.grants.password({ username, password: 'wrong-Password-1' }, { ip: '127.0.0.1', userAgent: null }),
      (err: { code?: string }) => err.code === 'invalid_credentials',
    );
  });
});

describe('the plugin refuses what it cannot guard', () => {
  let tdb: TestDatabase;
  before(async () => {
    tdb = await openTestDatabase('pglite');
  });
  after(async () => tdb.close());

  test('registered inside an encapsulated context: start-up fails with a clear message', async () => {
    const app = Fastify();
    app.get('/outside', { config: { auth: {} } }, async () => ({ open: true }));
    app.register(async (child) => {
      await child.register(gatehouse, options(tdb));
    });
    await assert.rejects(async () => app.ready(), /must be registered on the root Fastify instance/);
    await app.close().catch(() => {});
  });

  test('inside an fp-wrapped plugin (which shares the root): allowed', async () => {
    const app = Fastify();
    await app.register(fp(async (root) => root.register(gatehouse, options(tdb))));
    app.get('/x', { config: { auth: {} } }, async () => ({ open: true }));
    await app.ready();
    const r = await app.inject('/x');
    assert.equal(r.statusCode, 401);
    await app.close();
  });

  test('a route asking for a scope nobody declared: start-up fails', async () => {
    const app = Fastify();
    await app.register(gatehouse, options(tdb));
    assert.throws(
      () => app.get('/typo', { config: { auth: { scopes: ['notes:wirte'] } } }, async () => ({})),
      /unknown scope "notes:wirte"/,
    );
    await app.close();
  });

  test('bad options: registration fails naming each field', async () => {
    const app = Fastify();
    const bad = { ...options(tdb), accessTokenTtlSeconds: 5, prefix: 'auth', bogus: 1 } as unknown as GatehouseOptions;
    await assert.rejects(async () => app.register(gatehouse, bad).ready(), (err: Error) => {
      assert.match(err.message, /accessTokenTtlSeconds/);
      assert.match(err.message, /prefix/);
      assert.match(err.message, /bogus/);
      return true;
    });
    await app.close().catch(() => {});
  });

  test('a custom prefix and realm', async () => {
    const app = Fastify();
    await app.register(gatehouse, options(tdb, { prefix: '/id/oauth', realm: 'other' }));
    await app.ready();
    const r = await app.inject({ method: 'POST', url: '/id/oauth/token', payload: 'grant_type=password&username=a&password=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error, 'invalid_grant');
    assert.equal((await app.inject({ method: 'POST', url: '/auth/token' })).statusCode, 404);
    const logout = await app.inject({ method: 'POST', url: '/id/oauth/logout' });
    assert.equal(logout.headers['www-authenticate'], 'Bearer realm="other"');
    await app.close();
  });
});
