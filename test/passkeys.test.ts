// Issue 14, passkeys (docs/API.md "Passkeys"). First the software
// authenticator of these tests is checked against @simplewebauthn/server's
// own verifier (if it were wrong, every test below would prove nothing);
// then every rule over HTTP, on PGlite and on the PostgreSQL server:
// registration (options, verification, exclusion, refusals), passwordless
// sign-in (amr, auth_time, refresh), the counter of a cloned authenticator,
// disabled users, deleted passkeys, replayed, foreign, expired and
// misdirected assertions, and managing (list, rename, delete, audit).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type { AuditEventView } from '../src/auth/audit.js';
import { backends, registerAndLogin, startApp, type LoggedIn, type Res, type TestApp } from './helpers.js';
import { codeFor, nextStep } from './totp-codes.js';
import { cbor, FLAGS, SoftAuthenticator, type Algorithm, type CeremonyOverrides, type SoftCredential } from './webauthn-authenticator.js';

const ORIGIN = 'https://auth.example.test';
const RP_ID = 'auth.example.test';
const WEBAUTHN = 'urn:gatehouse:params:oauth:grant-type:webauthn';
const MFA_WEBAUTHN = 'urn:gatehouse:params:oauth:grant-type:mfa-webauthn';

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

function assertInvalidGrant(r: Res) {
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error, 'invalid_grant', r.text);
  assert.equal(typeof r.body.error_description, 'string');
  assert.ok(!/Error:|at .*\.ts|SELECT|counter value/.test(r.text), 'nothing internal leaks');
}

function assertProblem(r: Res, status: number, code?: string) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
  if (code) assert.equal(r.body.code, code, r.text);
}

describe('the software authenticator, checked by @simplewebauthn/server itself', () => {
  for (const alg of ['ES256', 'EdDSA'] as Algorithm[]) {
    test(`${alg}: its registration and its assertions verify; a changed byte does not`, async () => {
      const authenticator = new SoftAuthenticator(ORIGIN, { alg });
      const options = await generateRegistrationOptions({ rpName: 'Test', rpID: RP_ID, userName: 'alice', supportedAlgorithmIDs: [-7, -8] });
      const { response } = authenticator.create(options);
      const reg = await verifyRegistrationResponse({
        response: response as never,
        expectedChallenge: options.challenge,
        expectedOrigin: ORIGIN,
        expectedRPID: RP_ID,
        requireUserVerification: true,
      });
      assert.equal(reg.verified, true);
      assert.equal(reg.registrationInfo!.fmt, 'none');
      assert.equal(reg.registrationInfo!.credential.id, response.id);
      const credential = reg.registrationInfo!.credential;
      for (let i = credential.counter + 1; i <= credential.counter + 2; i++) {
        const req = await generateAuthenticationOptions({ rpID: RP_ID, userVerification: 'required' });
        const assertion = authenticator.get(req);
        const auth = await verifyAuthenticationResponse({
          response: assertion as never,
          expectedChallenge: req.challenge,
          expectedOrigin: ORIGIN,
          expectedRPID: RP_ID,
          credential,
          requireUserVerification: true,
        });
        assert.equal(auth.verified, true);
        assert.equal(auth.authenticationInfo.newCounter, i);
      }
      // A signature over other data must not verify: the verifier is really checking ours.
      const req = await generateAuthenticationOptions({ rpID: RP_ID });
      const good = authenticator.get(req);
      const forged = { ...good, response: { ...good.response, signature: authenticator.get(req).response.signature } };
      const bad = await verifyAuthenticationResponse({
        response: forged as never,
        expectedChallenge: req.challenge,
        expectedOrigin: ORIGIN,
        expectedRPID: RP_ID,
        credential: { ...credential, counter: 0 },
      }).catch(() => ({ verified: false }));
      assert.equal(bad.verified, false);
    });
  }

  test('its CBOR is RFC 8949 (shortest heads, negative integers, maps)', () => {
    assert.equal(cbor(new Map([[1, 2], [3, -7], [-1, 1]])).toString('hex'), 'a301020326200 1'.replace(/ /g, ''));
    assert.equal(cbor(-8).toString('hex'), '27');
    assert.equal(cbor(24).toString('hex'), '1818');
    assert.equal(cbor(500).toString('hex'), '1901f4');
    assert.equal(cbor('fmt').toString('hex'), '63666d74');
    assert.equal(cbor(new Uint8Array(2)).toString('hex'), '420000');
  });
});

for (const backend of backends()) {
  describe(`passkeys (${backend})`, () => {
    let app: TestApp;
    before(async () => {
      app = await startApp({ backend, env: { PUBLIC_URL: ORIGIN } });
    });
    after(async () => app?.close());

    const creationOptions = async (u: LoggedIn) => {
      const r = await app.http.post('/users/me/passkeys/options', undefined, u.access);
      assert.equal(r.status, 200, r.text);
      return r.body;
    };

    /** The whole registration ceremony; returns the stored passkey and the credential. */
    async function addPasskey(u: LoggedIn, authenticator: SoftAuthenticator, name?: string, over?: CeremonyOverrides) {
      const options = await creationOptions(u);
      const { response, credential } = authenticator.create(options, over);
      const r = await app.http.post('/users/me/passkeys', { ...(name === undefined ? {} : { name }), response }, u.access);
      return { r, credential, response };
    }

    async function userWithPasskey(alg: Algorithm = 'ES256', opts: { counting?: boolean } = {}) {
      const u = await registerAndLogin(app.http);
      const authenticator = new SoftAuthenticator(ORIGIN, { alg, ...opts });
      const { r, credential } = await addPasskey(u, authenticator, 'My key');
      assert.equal(r.status, 201, r.text);
      return { u, authenticator, credential, passkey: r.body as { id: string; name: string } };
    }

    const requestOptions = async () => {
      const r = await app.http.post('/auth/passkey/options');
      assert.equal(r.status, 200, r.text);
      return r.body;
    };

    const signIn = (assertion: unknown, extra: Record<string, string> = {}) =>
      app.http.token({ grant_type: WEBAUTHN, assertion: typeof assertion === 'string' ? assertion : JSON.stringify(assertion), ...extra });

    async function assertionFor(authenticator: SoftAuthenticator, over?: CeremonyOverrides, credential?: SoftCredential) {
      return authenticator.get(await requestOptions(), over, credential);
    }

    async function auditOf(userId: string, type: string): Promise<AuditEventView[]> {
      await app.core.audit.flush();
      return (await app.core.db.query<AuditEventView>('SELECT * FROM audit_events WHERE user_id = $1 AND type = $2 ORDER BY at', [userId, type])).rows;
    }

    test('creation options: resident key and UV required, ES256 and EdDSA, the RP, an opaque stable user handle, no-store', async () => {
      const u = await registerAndLogin(app.http);
      const r = await app.http.post('/users/me/passkeys/options', undefined, u.access);
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers.get('cache-control') ?? '', /no-store/);
      const o = r.body;
      assert.deepEqual(o.rp, { name: 'Gatehouse', id: RP_ID });
      assert.equal(o.authenticatorSelection.residentKey, 'required');
      assert.equal(o.authenticatorSelection.requireResidentKey, true);
      assert.equal(o.authenticatorSelection.userVerification, 'required');
      assert.deepEqual(o.pubKeyCredParams.map((p: { alg: number }) => p.alg).sort((x: number, y: number) => x - y), [-8, -7]);
      assert.equal(o.attestation, 'none');
      assert.equal(o.user.name, u.username);
      assert.equal(Buffer.from(o.challenge, 'base64url').length, 32);
      const handle = Buffer.from(o.user.id, 'base64url');
      assert.equal(handle.length, 32, 'a random 32-byte handle');
      for (const personal of [u.email, u.username, u.id]) assert.ok(!handle.toString('latin1').includes(personal) && o.user.id !== personal);
      const again = (await app.http.post('/users/me/passkeys/options', undefined, u.access)).body;
      assert.equal(again.user.id, o.user.id, 'stable: the same handle for every passkey of the user');
      assert.notEqual(again.challenge, o.challenge);
      const other = await registerAndLogin(app.http);
      assert.notEqual((await creationOptions(other)).user.id, o.user.id);
      // Scope `me`: a token without it is refused; no token: 401.
      assert.equal((await app.http.post('/users/me/passkeys/options')).status, 401);
      const narrow = await registerAndLogin(app.http, undefined, 'posts:write');
      assert.equal((await app.http.post('/users/me/passkeys/options', undefined, narrow.access)).status, 403);
    });

    test('adding a passkey needs a recent sign-in (10 minutes) or the password again: a stolen token of an old session cannot add one', async () => {
      const u = await registerAndLogin(app.http);
      app.clock.advance(11 * 60_000); // the access token (15 minutes) still works; the sign-in is not recent
      assert.equal((await app.http.get('/users/me', u.access)).status, 200);
      assertProblem(await app.http.post('/users/me/passkeys/options', undefined, u.access), 403, 'reauthentication_required');
      assertProblem(await app.http.post('/users/me/passkeys/options', { password: 'not-the-Password-7' }, u.access), 400, 'current_password_incorrect');
      const r = await app.http.post('/users/me/passkeys/options', { password: u.password }, u.access);
      assert.equal(r.status, 200, r.text);
      const { response } = new SoftAuthenticator(ORIGIN).create(r.body);
      assert.equal((await app.http.post('/users/me/passkeys', { response }, u.access)).status, 201);
      assertProblem(await app.http.post('/users/me/passkeys/options', { other: 1 }, u.access), 422);
    });

    for (const alg of ['ES256', 'EdDSA'] as Algorithm[]) {
      test(`register a ${alg} passkey: 201 {id, name, created_at, last_used_at}; listed; audited`, async () => {
        const u = await registerAndLogin(app.http);
        const { r } = await addPasskey(u, new SoftAuthenticator(ORIGIN, { alg }), '  Laptop  ');
        assert.equal(r.status, 201, r.text);
        assert.deepEqual(Object.keys(r.body).sort(), ['created_at', 'id', 'last_used_at', 'name']);
        assert.equal(r.body.name, 'Laptop');
        assert.equal(r.body.last_used_at, null);
        const list = await app.http.get('/users/me/passkeys', u.access);
        assert.equal(list.status, 200);
        assert.deepEqual(list.body, [r.body]);
        assert.match(list.headers.get('cache-control') ?? '', /no-store/);
        const events = await auditOf(u.id, 'passkey_added');
        assert.equal(events.length, 1);
        assert.equal(events[0]!.detail.passkey_id, r.body.id);
      });
    }

    test('a name is optional (a dated default) and bounded; control characters refused', async () => {
      const u = await registerAndLogin(app.http);
      const authenticator = new SoftAuthenticator(ORIGIN);
      const { r } = await addPasskey(u, authenticator);
      assert.equal(r.status, 201, r.text);
      assert.match(r.body.name, /^Passkey added \d{4}-\d{2}-\d{2}$/);
      for (const name of ['', 'x'.repeat(65), 'a\u0000b', 'line\nbreak', '   ']) {
        const bad = await addPasskey(u, new SoftAuthenticator(ORIGIN), name);
        assertProblem(bad.r, 422);
      }
      assert.equal((await app.http.get('/users/me/passkeys', u.access)).body.length, 1, 'a refused name stores nothing');
    });

    test('existing passkeys are excluded; the same credential again is 409; another account cannot claim its id', async () => {
      const { u, authenticator, credential, passkey } = await userWithPasskey();
      const options = await creationOptions(u);
      assert.deepEqual(
        options.excludeCredentials.map((c: { id: string; type: string }) => [c.id, c.type]),
        [[credential.id.toString('base64url'), 'public-key']],
      );
      assert.throws(() => authenticator.create(options), /InvalidStateError/, 'an honest authenticator refuses');
      // A client that ignores the exclusion list and presents the same credential again.
      const again = authenticator.create(await creationOptions(u), {}, credential);
      assertProblem(await app.http.post('/users/me/passkeys', { response: again.response }, u.access), 409, 'passkey_exists');
      // Another account claiming the same credential id with a key of its own: refused, the owner's row untouched.
      const squatter = await registerAndLogin(app.http);
      const claim = new SoftAuthenticator(ORIGIN).create(await creationOptions(squatter), { credentialId: credential.id });
      assertProblem(await app.http.post('/users/me/passkeys', { response: claim.response }, squatter.access), 409, 'passkey_exists');
      assert.deepEqual((await app.http.get('/users/me/passkeys', squatter.access)).body, []);
      assert.deepEqual((await app.http.get('/users/me/passkeys', u.access)).body.map((p: { id: string }) => p.id), [passkey.id]);
      assert.equal((await signIn(await assertionFor(authenticator))).status, 200, 'the owner still signs in');
    });

    test('registration refusals: replayed response, another user\'s challenge, sign-in challenge, wrong origin, wrong RP ID, no UV, expired', async () => {
      const u = await registerAndLogin(app.http);
      const other = await registerAndLogin(app.http);
      const authenticator = new SoftAuthenticator(ORIGIN);
      // Replay: a response accepted once is never accepted again (its challenge is spent).
      const first = await addPasskey(u, authenticator);
      assert.equal(first.r.status, 201, first.r.text);
      assertProblem(await app.http.post('/users/me/passkeys', { response: first.response }, u.access), 400, 'passkey_invalid');
      // Options issued to another user.
      const foreign = new SoftAuthenticator(ORIGIN).create(await creationOptions(other));
      assertProblem(await app.http.post('/users/me/passkeys', { response: foreign.response }, u.access), 400, 'passkey_invalid');
      // A sign-in challenge is not a registration challenge.
      const signInChallenge = (await requestOptions()).challenge;
      const misdirected = new SoftAuthenticator(ORIGIN).create(await creationOptions(u), { challenge: signInChallenge });
      assertProblem(await app.http.post('/users/me/passkeys', { response: misdirected.response }, u.access), 400, 'passkey_invalid');
      // Made for another site (origin or RP ID), or without user verification.
      for (const over of [{ origin: 'https://evil.example' }, { origin: 'http://auth.example.test' }, { rpId: 'evil.example' }, { rpId: 'example.test' }, { flags: FLAGS.UP | FLAGS.AT }, { type: 'webauthn.get' as const }]) {
        const bad = await addPasskey(u, new SoftAuthenticator(ORIGIN), undefined, over);
        assertProblem(bad.r, 400, 'passkey_invalid');
      }
      // Expired: 5 minutes.
      const options = await creationOptions(u);
      app.clock.advance(5 * 60_000 + 1000);
      const late = new SoftAuthenticator(ORIGIN).create(options);
      assertProblem(await app.http.post('/users/me/passkeys', { response: late.response }, u.access), 400, 'passkey_invalid');
      // Malformed: a 422 naming the field, nothing stored.
      assertProblem(await app.http.post('/users/me/passkeys', { response: { id: 'x' } }, u.access), 422);
      assertProblem(await app.http.post('/users/me/passkeys', { response: { ...first.response, response: { ...first.response.response, attestationObject: 'AAAA' } } }, u.access), 400);
      assert.equal((await app.http.get('/users/me/passkeys', u.access)).body.length, 1);
      assert.equal((await app.http.get('/users/me/passkeys', other.access)).body.length, 0);
    });

    test('sign in with a passkey alone: tokens with amr ["hwk","user","mfa"], auth_time now; refresh keeps working; last_used_at set', async () => {
      const { u, authenticator, passkey } = await userWithPasskey('EdDSA');
      const options = await requestOptions();
      assert.equal(options.rpId, RP_ID);
      assert.equal(options.userVerification, 'required');
      assert.equal('allowCredentials' in options, false, 'no allowCredentials: the passkey names the user');
      const before = Math.floor(app.clock.now() / 1000);
      const r = await signIn(authenticator.get(options));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.token_type, 'bearer');
      assert.match(r.headers.get('cache-control') ?? '', /no-store/);
      const c = claims(r.body.access_token);
      assert.equal(c.sub, u.id);
      assert.deepEqual(c.amr, ['hwk', 'user', 'mfa']);
      assert.ok(Math.abs((c.auth_time as number) - before) <= 2, 'auth_time is this login');
      assert.equal(r.body.scope, u.scope, 'every scope the role allows');
      assert.equal((await app.http.get('/users/me', r.body.access_token)).body.id, u.id);
      const refreshed = await app.http.token({ grant_type: 'refresh_token', refresh_token: r.body.refresh_token });
      assert.equal(refreshed.status, 200, refreshed.text);
      assert.equal(claims(refreshed.body.access_token).auth_time, c.auth_time);
      assert.deepEqual(claims(refreshed.body.access_token).amr, ['hwk', 'user', 'mfa'], 'the session keeps how it began');
      const listed = (await app.http.get('/users/me/passkeys', u.access)).body.find((p: { id: string }) => p.id === passkey.id);
      assert.notEqual(listed.last_used_at, null);
      const logins = await auditOf(u.id, 'login');
      assert.equal(logins.at(-1)!.detail.method, 'webauthn');
      // A narrower scope may be asked for; a wider one is refused.
      const narrow = await signIn(await assertionFor(authenticator), { scope: 'me' });
      assert.equal(narrow.status, 200, narrow.text);
      assert.equal(narrow.body.scope, 'me');
      const wide = await signIn(await assertionFor(authenticator), { scope: 'admin' });
      assert.equal(wide.status, 400);
      assert.equal(wide.body.error, 'invalid_scope');
    });

    test('a counter that does not move forward (a cloned authenticator) is refused and audited; 0 after 0 is fine', async () => {
      const { u, authenticator, credential } = await userWithPasskey();
      assert.equal((await signIn(await assertionFor(authenticator))).status, 200); // counter 2 stored
      assert.equal((await signIn(await assertionFor(authenticator))).status, 200); // 3
      for (const signCount of [2, 3, 0]) {
        assertInvalidGrant(await signIn(await assertionFor(authenticator, { signCount }, credential)));
      }
      const failures = (await auditOf(u.id, 'login_failed')).filter((e) => e.detail.reason === 'counter');
      assert.equal(failures.length, 3);
      assert.equal(failures[0]!.detail.stored_counter, 3);
      assert.equal(failures[0]!.detail.presented_counter, 2);
      // The genuine authenticator moves on and still signs in.
      assert.equal((await signIn(await assertionFor(authenticator, { signCount: 10 }))).status, 200);
      // A synced passkey that always reports 0.
      const synced = await userWithPasskey('ES256', { counting: false });
      for (let i = 0; i < 3; i++) assert.equal((await signIn(await assertionFor(synced.authenticator))).status, 200);
    });

    test('refused with invalid_grant: disabled user, deleted passkey, replayed assertion, foreign credential, wrong user handle', async () => {
      // Disabled.
      const d = await userWithPasskey();
      await app.core.db.query('UPDATE users SET disabled = true WHERE id = $1', [d.u.id]);
      await app.core.userStates.changed(d.u.id);
      assertInvalidGrant(await signIn(await assertionFor(d.authenticator)));
      assert.equal((await auditOf(d.u.id, 'login_failed')).at(-1)!.detail.reason, 'disabled');
      // Deleted.
      const x = await userWithPasskey();
      assert.equal((await app.http.delete(`/users/me/passkeys/${x.passkey.id}`, x.u.access)).status, 204);
      assertInvalidGrant(await signIn(await assertionFor(x.authenticator)));
      // Replayed: accepted once, then never again.
      const y = await userWithPasskey();
      const assertion = await assertionFor(y.authenticator);
      assert.equal((await signIn(assertion)).status, 200);
      assertInvalidGrant(await signIn(assertion));
      // A credential this server never registered (signed by a real key, for a real challenge).
      const stranger = new SoftAuthenticator(ORIGIN);
      stranger.create({ challenge: 'x', rp: { id: RP_ID, name: 'x' }, user: { id: 'AAAA', name: 'x', displayName: 'x' }, pubKeyCredParams: [{ alg: -7, type: 'public-key' }] });
      assertInvalidGrant(await signIn(await assertionFor(stranger)));
      // The user handle must be the owner's, and present when the user was not named first.
      const other = await userWithPasskey();
      const otherHandle = other.credential.userHandle;
      assertInvalidGrant(await signIn(await assertionFor(y.authenticator, { userHandle: otherHandle })));
      assertInvalidGrant(await signIn(await assertionFor(y.authenticator, { userHandle: null })));
      assert.equal((await signIn(await assertionFor(y.authenticator))).status, 200, 'the genuine one still works');
    });

    test('refused with invalid_grant: another origin, another RP ID, no user verification, a create() response, a registration challenge, an expired one', async () => {
      const { u, authenticator } = await userWithPasskey();
      const cases: CeremonyOverrides[] = [
        { origin: 'https://evil.example' },
        { origin: 'https://auth.example.test:8443' },
        { rpId: 'evil.example' },
        { rpId: 'example.test' },
        { flags: FLAGS.UP },
        { type: 'webauthn.create' },
        { challenge: Buffer.alloc(32, 7).toString('base64url') }, // never issued
      ];
      for (const over of cases) assertInvalidGrant(await signIn(await assertionFor(authenticator, over)));
      // A challenge issued for registering a passkey cannot sign in.
      const registration = await creationOptions(u);
      assertInvalidGrant(await signIn(await assertionFor(authenticator, { challenge: registration.challenge })));
      // Expired after 5 minutes.
      const options = await requestOptions();
      app.clock.advance(5 * 60_000 + 1000);
      assertInvalidGrant(await signIn(authenticator.get(options)));
      assert.equal((await signIn(await assertionFor(authenticator))).status, 200, 'and a fresh one works');
    });

    test('a malformed or missing assertion: 400 invalid_request; nothing spent', async () => {
      const { authenticator } = await userWithPasskey();
      const good = await assertionFor(authenticator);
      for (const assertion of ['', 'not json', '[]', '{}', JSON.stringify({ ...good, type: 'other' }), JSON.stringify({ ...good, extra: 1 })]) {
        const r = await signIn(assertion);
        assert.equal(r.status, 400, r.text);
        assert.equal(r.body.error, 'invalid_request', `${assertion}: ${r.text}`);
      }
      const missing = await app.http.token({ grant_type: WEBAUTHN });
      assert.equal(missing.body.error, 'invalid_request');
      assert.equal((await signIn(good)).status, 200, 'the refused requests did not spend its challenge');
    });

    test('list, rename, delete: only your own (404 otherwise); audited', async () => {
      const a = await userWithPasskey();
      const b = await userWithPasskey();
      const renamed = await app.http.patch(`/users/me/passkeys/${a.passkey.id}`, { name: 'Phone' }, a.u.access);
      assert.equal(renamed.status, 200, renamed.text);
      assert.equal(renamed.body.name, 'Phone');
      assertProblem(await app.http.patch(`/users/me/passkeys/${a.passkey.id}`, { name: 'Mine now' }, b.u.access), 404);
      assertProblem(await app.http.patch(`/users/me/passkeys/${a.passkey.id}`, { name: '\u0007' }, a.u.access), 422);
      assertProblem(await app.http.delete(`/users/me/passkeys/${a.passkey.id}`, b.u.access), 404);
      assertProblem(await app.http.delete('/users/me/passkeys/not-a-uuid', a.u.access), 404);
      assert.equal((await app.http.get('/users/me/passkeys', a.u.access)).body[0].name, 'Phone');
      assert.equal((await app.http.delete(`/users/me/passkeys/${a.passkey.id}`, a.u.access)).status, 204);
      assertProblem(await app.http.delete(`/users/me/passkeys/${a.passkey.id}`, a.u.access), 404);
      assert.deepEqual((await app.http.get('/users/me/passkeys', a.u.access)).body, []);
      assert.equal((await app.http.get('/users/me/passkeys', b.u.access)).body.length, 1);
      const removed = await auditOf(a.u.id, 'passkey_removed');
      assert.equal(removed.length, 1);
      assert.equal(removed[0]!.detail.passkey_id, a.passkey.id);
      // Deleting a passkey never leaves the account without its password: signing in with it still works.
      assert.equal((await app.http.token({ grant_type: 'password', username: a.u.username, password: a.u.password })).status, 200);
    });

    /** TOTP turned on for `u` (the contract's trigger of two-factor sign-in). */
    async function enableTotp(u: LoggedIn): Promise<string> {
      const e = await app.http.post('/users/me/mfa/totp', { password: u.password }, u.access);
      assert.equal(e.status, 200, e.text);
      nextStep(app.clock);
      const c = await app.http.post('/users/me/mfa/totp/confirm', { code: codeFor(e.body.secret, app.clock) }, u.access);
      assert.equal(c.status, 200, c.text);
      return e.body.secret;
    }

    async function passwordStep(u: LoggedIn): Promise<Res> {
      return app.http.token({ grant_type: 'password', username: u.username, password: u.password });
    }

    const secondStep = (mfaToken: string, assertion: unknown) =>
      app.http.token({ grant_type: MFA_WEBAUTHN, mfa_token: mfaToken, assertion: JSON.stringify(assertion) });

    const secondFactorOptions = async (mfaToken: string) => {
      const r = await app.http.post('/auth/passkey/options', { mfa_token: mfaToken });
      assert.equal(r.status, 200, r.text);
      return r.body;
    };

    test('a passkey alone does not turn two-factor sign-in on; GET /users/me/mfa counts passkeys', async () => {
      const { u } = await userWithPasskey();
      const r = await passwordStep(u);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(claims(r.body.access_token).amr, ['pwd']);
      const status = await app.http.get('/users/me/mfa', u.access);
      assert.deepEqual(status.body, { totp: false, recovery_codes_left: 0, passkeys: 1 });
      assert.equal((await app.http.get('/users/me', u.access)).body.mfa, false);
    });

    test('second factor: after a right password, mfa_methods has webauthn; the mfa-webauthn grant finishes with amr ["pwd","hwk","mfa"]', async () => {
      const { u, authenticator, credential } = await userWithPasskey('EdDSA');
      await enableTotp(u);
      const step = await passwordStep(u);
      assert.equal(step.status, 403, step.text);
      assert.deepEqual(step.body.mfa_methods, ['totp', 'recovery_code', 'webauthn']);
      const options = await secondFactorOptions(step.body.mfa_token);
      assert.deepEqual(options.allowCredentials.map((c: { id: string }) => c.id), [credential.id.toString('base64url')]);
      assert.equal(options.userVerification, 'required');
      const r = await secondStep(step.body.mfa_token, authenticator.get(options));
      assert.equal(r.status, 200, r.text);
      const c = claims(r.body.access_token);
      assert.equal(c.sub, u.id);
      assert.deepEqual(c.amr, ['pwd', 'hwk', 'mfa']);
      const refreshed = await app.http.token({ grant_type: 'refresh_token', refresh_token: r.body.refresh_token });
      assert.deepEqual(claims(refreshed.body.access_token).amr, ['pwd', 'hwk', 'mfa']);
      // The mfa_token is spent by the success.
      assertInvalidGrant(await secondStep(step.body.mfa_token, authenticator.get(options)));
      assert.equal((await app.http.post('/auth/passkey/options', { mfa_token: step.body.mfa_token })).status, 400);
      // Without TOTP, webauthn is no longer a second factor (the passkey stays a way in on its own).
      assert.deepEqual((await app.http.get('/users/me/mfa', u.access)).body.passkeys, 1);
    });

    test('second factor refusals: a passwordless challenge, another login\'s challenge, another user\'s passkey, a stale counter (audited as mfa_failed)', async () => {
      const a = await userWithPasskey();
      const b = await userWithPasskey();
      await enableTotp(a.u);
      const first = (await passwordStep(a.u)).body.mfa_token as string;
      const second = (await passwordStep(a.u)).body.mfa_token as string;
      // A passwordless challenge cannot finish a second step (nor the reverse).
      assertInvalidGrant(await secondStep(first, await assertionFor(a.authenticator)));
      const bound = await secondFactorOptions(first);
      assertInvalidGrant(await signIn(a.authenticator.get(bound)));
      // A challenge issued for another pending login of the same user.
      assertInvalidGrant(await secondStep(second, a.authenticator.get(await secondFactorOptions(first))));
      // Another user's (valid) passkey.
      assertInvalidGrant(await secondStep(first, b.authenticator.get({ ...(await secondFactorOptions(first)), allowCredentials: [] })));
      // A counter that went backwards: refused and audited with both values.
      assertInvalidGrant(await secondStep(second, a.authenticator.get(await secondFactorOptions(second), { signCount: 1 })));
      const failed = await auditOf(a.u.id, 'mfa_failed');
      assert.ok(failed.some((e) => e.detail.method === 'webauthn' && e.detail.reason === 'counter' && e.detail.presented_counter === 1), JSON.stringify(failed));
      // An mfa_token takes 5 attempts in all (4 used above on `first`/`second`): the genuine passkey still finishes `second`.
      const ok = await secondStep(second, a.authenticator.get(await secondFactorOptions(second)));
      assert.equal(ok.status, 200, ok.text);
      // An unknown mfa_token gets no options.
      assertProblem(await app.http.post('/auth/passkey/options', { mfa_token: 'ghm_' + 'A'.repeat(43) }), 400, 'mfa_token_invalid');
      assertProblem(await app.http.post('/auth/passkey/options', { mfa_token: 'x', other: 1 }), 422);
    });

    test('the browser endpoint serves both passkey grants; an admin\'s mfa_reset removes passkeys', async () => {
      const { u, authenticator } = await userWithPasskey();
      const headers = { 'x-requested-with': 'gatehouse', origin: ORIGIN };
      const form = { grant_type: WEBAUTHN, assertion: JSON.stringify(await assertionFor(authenticator)) };
      const r = await app.http.request('POST', '/auth/browser/token', { form, headers });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.refresh_token, undefined, 'the refresh token is in the cookie only');
      assert.match(r.headers.get('set-cookie') ?? '', /gh_refresh=/);
      assert.deepEqual(claims(r.body.access_token).amr, ['hwk', 'user', 'mfa']);
      await enableTotp(u);
      const step = await app.http.request('POST', '/auth/browser/token', { form: { username: u.username, password: u.password }, headers });
      assert.equal(step.status, 403, step.text);
      const options = await secondFactorOptions(step.body.mfa_token);
      const done = await app.http.request('POST', '/auth/browser/token', {
        form: { grant_type: MFA_WEBAUTHN, mfa_token: step.body.mfa_token, assertion: JSON.stringify(authenticator.get(options)) },
        headers,
      });
      assert.equal(done.status, 200, done.text);
      assert.deepEqual(claims(done.body.access_token).amr, ['pwd', 'hwk', 'mfa']);
      // An administrator's reset of the second factors takes the passkeys too.
      const admin = await registerAndLogin(app.http);
      await app.core.db.query(`UPDATE users SET role = 'admin' WHERE id = $1`, [admin.id]);
      await app.core.userStates.changed(admin.id);
      const adminToken = (await app.http.token({ grant_type: 'password', username: admin.username, password: admin.password })).body.access_token;
      assert.equal((await app.http.patch(`/admin/users/${u.id}`, { mfa_reset: true }, adminToken)).status, 200);
      assert.equal(await app.core.passkeys.count(u.id), 0);
      assertInvalidGrant(await signIn(await assertionFor(authenticator)));
    });

    test('challenges are single-use across concurrent requests: one winner', async () => {
      const { authenticator } = await userWithPasskey('ES256', { counting: false });
      const assertion = JSON.stringify(await assertionFor(authenticator));
      const results = await Promise.all(Array.from({ length: 5 }, () => signIn(assertion)));
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 400, 400, 400, 400]);
    });
  });
}

describe('passkey limits and configuration', () => {
  test('POST /auth/passkey/options is limited per address (429 + Retry-After)', async () => {
    const app = await startApp({ env: { PUBLIC_URL: ORIGIN, RATE_LIMIT_TOKEN_PER_MINUTE: '3' } });
    try {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await app.http.post('/auth/passkey/options')).status);
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      const r = await app.http.post('/auth/passkey/options');
      assert.ok(Number(r.headers.get('retry-after')) > 0);
    } finally {
      await app.close();
    }
  });

  test('WEBAUTHN_RP_ID may be a parent domain of PUBLIC_URL\'s host, nothing else; WEBAUTHN_RP_NAME names the RP', async () => {
    const app = await startApp({ env: { PUBLIC_URL: 'https://login.example.test', WEBAUTHN_RP_ID: 'example.test', WEBAUTHN_RP_NAME: 'Example' } });
    try {
      const u = await registerAndLogin(app.http);
      const o = (await app.http.post('/users/me/passkeys/options', undefined, u.access)).body;
      assert.deepEqual(o.rp, { id: 'example.test', name: 'Example' });
      const authenticator = new SoftAuthenticator('https://login.example.test');
      const { response } = authenticator.create(o);
      assert.equal((await app.http.post('/users/me/passkeys', { response }, u.access)).status, 201);
      const options = (await app.http.post('/auth/passkey/options')).body;
      assert.equal(options.rpId, 'example.test');
      const r = await app.http.token({ grant_type: WEBAUTHN, assertion: JSON.stringify(authenticator.get(options)) });
      assert.equal(r.status, 200, r.text);
    } finally {
      await app.close();
    }
    await assert.rejects(startApp({ env: { PUBLIC_URL: ORIGIN, WEBAUTHN_RP_ID: 'evil.example' } }), /WEBAUTHN_RP_ID/);
    await assert.rejects(startApp({ env: { PUBLIC_URL: ORIGIN, WEBAUTHN_RP_ID: 'test' } }), /WEBAUTHN_RP_ID/);
  });
});

