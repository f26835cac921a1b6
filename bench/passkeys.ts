// npm run bench:passkeys [-- --rounds 4 --users 100 --connections 8 --verifies 3000]
//
// 1. The cost of verifying one assertion: verifyAuthenticationResponse of
//    @simplewebauthn/server in a loop (ES256 and EdDSA), µs per call.
// 2. Passkey sign-ins per second (POST /auth/passkey/options, then the
//    webauthn grant) ÷ password sign-ins per second, in the same run, on one
//    instance and database (PGlite, or a database of its own on the server
//    when DATABASE_URL is set). The software authenticator of the tests signs
//    in this process (its cost is counted against passkeys). Rounds
//    alternate (passkey, password, password, passkey…) so drift of a shared
//    machine falls on both alike.
import { parseArgs } from 'node:util';
import { generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse } from '@simplewebauthn/server';
import { backends, registerAndLogin, startApp, type TestApp } from '../test/helpers.js';
import { SoftAuthenticator, type Algorithm } from '../test/webauthn-authenticator.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    users: { type: 'string', default: '100' },
    connections: { type: 'string', default: '8' },
    verifies: { type: 'string', default: '3000' },
  },
});
const ROUNDS = Number(args.rounds);
const USERS = Number(args.users);
const CONNECTIONS = Number(args.connections);
const VERIFIES = Number(args.verifies);
const ORIGIN = 'https://auth.example.test';
const RP_ID = 'auth.example.test';
const WEBAUTHN = 'urn:gatehouse:params:oauth:grant-type:webauthn';
const log = (msg: string) => process.stderr.write(`bench:passkeys: ${msg}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function verifyCost(alg: Algorithm): Promise<number> {
  const authenticator = new SoftAuthenticator(ORIGIN, { alg, counting: false });
  const options = await generateRegistrationOptions({ rpName: 'bench', rpID: RP_ID, userName: 'bench', supportedAlgorithmIDs: [-7, -8] });
  const reg = await verifyRegistrationResponse({
    response: authenticator.create(options).response as never,
    expectedChallenge: options.challenge,
    expectedOrigin: ORIGIN,
    expectedRPID: RP_ID,
  });
  const credential = reg.registrationInfo!.credential;
  const req = await generateAuthenticationOptions({ rpID: RP_ID, userVerification: 'required' });
  const assertion = authenticator.get(req) as never;
  const once = () =>
    verifyAuthenticationResponse({ response: assertion, expectedChallenge: req.challenge, expectedOrigin: ORIGIN, expectedRPID: RP_ID, credential, requireUserVerification: true });
  for (let i = 0; i < 200; i++) await once(); // warm up
  const t0 = performance.now();
  for (let i = 0; i < VERIFIES; i++) if (!(await once()).verified) throw new Error('did not verify');
  return ((performance.now() - t0) * 1000) / VERIFIES;
}

/** Runs `signIn` for every item once, CONNECTIONS at a time; sign-ins per second. */
async function round<T>(items: T[], signIn: (item: T) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < items.length) await signIn(items[next++]!);
    }),
  );
  return items.length / ((performance.now() - t0) / 1000);
}

async function throughput(app: TestApp): Promise<{ passkey: number; password: number }> {
  const passkeyUsers: SoftAuthenticator[] = [];
  const passwordUsers: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const u = await registerAndLogin(app.http);
    const authenticator = new SoftAuthenticator(ORIGIN, { counting: false });
    const options = (await app.http.post('/users/me/passkeys/options', undefined, u.access)).body;
    const r = await app.http.post('/users/me/passkeys', { response: authenticator.create(options).response }, u.access);
    if (r.status !== 201) throw new Error(`register: ${r.status} ${r.text}`);
    passkeyUsers.push(authenticator);
    passwordUsers.push((await registerAndLogin(app.http)).username);
  }
  const passkeyLogin = async (authenticator: SoftAuthenticator) => {
    const options = (await app.http.post('/auth/passkey/options')).body;
    const r = await app.http.token({ grant_type: WEBAUTHN, assertion: JSON.stringify(authenticator.get(options)) });
    if (r.status !== 200) throw new Error(`passkey sign-in: ${r.status} ${r.text}`);
  };
  const passwordLogin = async (username: string) => {
    const r = await app.http.token({ grant_type: 'password', username, password: 'plum-Anchor-47-velvet' });
    if (r.status !== 200) throw new Error(`password sign-in: ${r.status} ${r.text}`);
  };
  await round(passkeyUsers.slice(0, 10), passkeyLogin); // warm up both paths
  await round(passwordUsers.slice(0, 10), passwordLogin);
  const pk: number[] = [];
  const pw: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    if (i % 2 === 0) {
      pk.push(await round(passkeyUsers, passkeyLogin));
      pw.push(await round(passwordUsers, passwordLogin));
    } else {
      pw.push(await round(passwordUsers, passwordLogin));
      pk.push(await round(passkeyUsers, passkeyLogin));
    }
    log(`round ${i + 1}: passkey ${pk.at(-1)!.toFixed(0)}/s, password ${pw.at(-1)!.toFixed(0)}/s`);
  }
  return { passkey: median(pk), password: median(pw) };
}

const es256 = await verifyCost('ES256');
const eddsa = await verifyCost('EdDSA');
log(`verifyAuthenticationResponse: ES256 ${es256.toFixed(0)} µs, EdDSA ${eddsa.toFixed(0)} µs per call (${VERIFIES} calls)`);
const backend = backends().at(-1)!;
const app = await startApp({ backend, env: { PUBLIC_URL: ORIGIN, LOG_LEVEL: 'silent' }, options: { audit: false } });
try {
  const t = await throughput(app);
  const ratio = t.passkey / t.password;
  log(`${backend}: passkey ${t.passkey.toFixed(0)} sign-ins/s, password ${t.password.toFixed(0)} sign-ins/s; ratio ${ratio.toFixed(2)}`);
  console.log(JSON.stringify({ backend, verifyUs: { ES256: Math.round(es256), EdDSA: Math.round(eddsa) }, signInsPerSecond: t, passkeyOverPassword: Number(ratio.toFixed(2)) }));
} finally {
  await app.close();
}
