// Configuration: every refusal names its variable; production never runs
// on a weak or missing key; development keeps one key under DATA_DIR so
// tokens survive restarts.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';
import { backends, openTestDatabase, registerAndLogin, startApp } from './helpers.js';
import { runToExit, tempDir } from './process-helpers.js';

const dirs: string[] = [];
function dir(): string {
  const d = tempDir('gatehouse-config-');
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function refuses(env: Record<string, string | undefined>, variable: string): ConfigError {
  let caught: unknown;
  try {
    loadConfig({ DATA_DIR: dir(), ...env });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError naming ${variable}, got ${String(caught)}`);
  assert.equal(caught.variable, variable);
  assert.ok(caught.message.startsWith(`${variable}: `), caught.message);
  assert.ok(!caught.message.includes('\n'), 'one line');
  return caught;
}

// 32 bytes that are not obviously guessable (production refuses 32 × "k": issue 9, finding 10).
const GOOD_SECRET = 'q8W2vT6yN1rB5xK9mP3sL7dF0gH4jZcA';

describe('loadConfig refusals', () => {
  test('production without SECRET_KEY', () => {
    refuses({ NODE_ENV: 'production' }, 'SECRET_KEY');
    refuses({ NODE_ENV: 'production', SECRET_KEY: '' }, 'SECRET_KEY');
  });

  test('production with a SECRET_KEY of 31 bytes (and the error does not echo it)', () => {
    const secret = 'short-secret-of-31-bytes-123456';
    assert.equal(Buffer.byteLength(secret), 31);
    const err = refuses({ NODE_ENV: 'production', SECRET_KEY: secret }, 'SECRET_KEY');
    assert.ok(!err.message.includes(secret));
    // Bytes count, not characters: 16 two-byte characters are 32 bytes; 15 plus one ASCII are 31.
    refuses({ NODE_ENV: 'production', SECRET_KEY: 'é'.repeat(15) + 'a' }, 'SECRET_KEY');
    const sixteen = 'éèêëàâäôöûüùçîïñ';
    const ok = loadConfig({ NODE_ENV: 'production', SECRET_KEY: sixteen, DATA_DIR: dir() });
    assert.equal(ok.secretKey, sixteen);
    assert.equal(ok.secretKeyGenerated, false);
    assert.equal(loadConfig({ NODE_ENV: 'production', SECRET_KEY: GOOD_SECRET, DATA_DIR: dir() }).secretKey, GOOD_SECRET);
  });

  test('PORT must be an integer in range', () => {
    for (const v of ['abc', '80x', '1.5', '70000', '-1', '0x50']) refuses({ PORT: v }, 'PORT');
    assert.equal(loadConfig({ PORT: '8080', DATA_DIR: dir(), SECRET_KEY: GOOD_SECRET }).port, 8080);
    assert.equal(loadConfig({ DATA_DIR: dir(), SECRET_KEY: GOOD_SECRET }).port, 8000);
  });

  test('ACCESS_TOKEN_EXPIRE_MINUTES must be a positive integer', () => {
    for (const v of ['0', '-5', 'ten', '1.5', '15m', '100000']) refuses({ ACCESS_TOKEN_EXPIRE_MINUTES: v }, 'ACCESS_TOKEN_EXPIRE_MINUTES');
    assert.equal(loadConfig({ ACCESS_TOKEN_EXPIRE_MINUTES: '30', DATA_DIR: dir(), SECRET_KEY: GOOD_SECRET }).accessTokenExpireMinutes, 30);
  });

  test('DATABASE_URL must be a postgres URL (and the error does not echo it)', () => {
    const e1 = refuses({ DATABASE_URL: 'not a url with p4ssw0rd' }, 'DATABASE_URL');
    assert.ok(!e1.message.includes('p4ssw0rd'));
    const e2 = refuses({ DATABASE_URL: 'mysql://root:p4ssw0rd@db/app' }, 'DATABASE_URL');
    assert.ok(!e2.message.includes('p4ssw0rd'));
    const cfg = loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/app', DATA_DIR: dir(), SECRET_KEY: GOOD_SECRET });
    assert.equal(cfg.databaseUrl, 'postgres://u:p@db:5432/app');
  });

  test('ALGORITHM must be one of the supported ones', () => {
    for (const v of ['none', 'HS512', 'hs256', 'RS512', 'ES384']) refuses({ ALGORITHM: v }, 'ALGORITHM');
  });

  test('keys: HS256 with a private key is refused; an asymmetric algorithm without one keeps its keys in the database', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    refuses({ ALGORITHM: 'HS256', JWT_PRIVATE_KEY: pem, SECRET_KEY: GOOD_SECRET }, 'ALGORITHM');
    // No key configured: the service keeps its own in the database (sealed under SECRET_KEY).
    assert.equal(loadConfig({ NODE_ENV: 'production', ALGORITHM: 'EdDSA', SECRET_KEY: GOOD_SECRET, DATA_DIR: dir() }).jwtPrivateKey, undefined);
    refuses({ NODE_ENV: 'production', ALGORITHM: 'EdDSA' }, 'SECRET_KEY');
    refuses({ JWT_PRIVATE_KEY_FILE: join(dir(), 'missing.pem'), ALGORITHM: 'EdDSA' }, 'JWT_PRIVATE_KEY_FILE');
    // The key must be a private key of the algorithm's type and size.
    const pemOf = (k: { export(o: object): string | Buffer }) => k.export({ format: 'pem', type: 'pkcs8' }).toString();
    refuses({ ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY: 'not a key', SECRET_KEY: GOOD_SECRET }, 'JWT_PRIVATE_KEY');
    refuses({ ALGORITHM: 'ES256', JWT_PRIVATE_KEY: pem, SECRET_KEY: GOOD_SECRET }, 'JWT_PRIVATE_KEY');
    refuses({ ALGORITHM: 'ES256', JWT_PRIVATE_KEY: pemOf(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey), SECRET_KEY: GOOD_SECRET }, 'JWT_PRIVATE_KEY');
    const weakRsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const e = refuses({ ALGORITHM: 'RS256', JWT_PRIVATE_KEY: pemOf(weakRsa.privateKey), SECRET_KEY: GOOD_SECRET }, 'JWT_PRIVATE_KEY');
    assert.match(e.message, /2048/);
    assert.ok(!e.message.includes('PRIVATE KEY'), 'the key is not echoed');
    const publicOnly = weakRsa.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    refuses({ ALGORITHM: 'RS256', JWT_PRIVATE_KEY: publicOnly, SECRET_KEY: GOOD_SECRET }, 'JWT_PRIVATE_KEY');
    const keyFile = join(dir(), 'weak.pem');
    writeFileSync(keyFile, pemOf(weakRsa.privateKey));
    refuses({ ALGORITHM: 'RS256', JWT_PRIVATE_KEY_FILE: keyFile, SECRET_KEY: GOOD_SECRET }, 'JWT_PRIVATE_KEY_FILE');
    assert.equal(loadConfig({ ALGORITHM: 'RS256', JWT_PRIVATE_KEY: pemOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey), SECRET_KEY: GOOD_SECRET, DATA_DIR: dir() }).algorithm, 'RS256');
    // Production with an asymmetric key needs no SECRET_KEY, and derives its HMAC keys from the private key.
    const cfg = loadConfig({ NODE_ENV: 'production', ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY: pem, DATA_DIR: dir() });
    assert.equal(cfg.algorithm, 'EdDSA');
    assert.ok(Buffer.byteLength(cfg.secretKey) >= 32);
    assert.equal(cfg.secretKeyGenerated, false);
  });

  test('WORKERS > 1 needs DATABASE_URL', () => {
    refuses({ WORKERS: '2' }, 'WORKERS');
    refuses({ WORKERS: 'two' }, 'WORKERS');
    const cfg = loadConfig({ WORKERS: '2', DATABASE_URL: 'postgres://db/app', DATA_DIR: dir(), SECRET_KEY: GOOD_SECRET });
    assert.equal(cfg.workers, 2);
  });

  test('other variables name themselves too', () => {
    refuses({ NODE_ENV: 'staging' }, 'NODE_ENV');
    refuses({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL');
    refuses({ REDIS_URL: 'http://localhost:6379' }, 'REDIS_URL');
    refuses({ CORS_ORIGINS: 'https://app.example.com/path' }, 'CORS_ORIGINS');
    refuses({ TRUST_PROXY: 'everyone' }, 'TRUST_PROXY');
    refuses({ HSTS: 'maybe' }, 'HSTS');
    refuses({ BODY_LIMIT_BYTES: '10' }, 'BODY_LIMIT_BYTES');
  });
});

describe('development secret key', () => {
  test('created once under DATA_DIR with mode 0600, then reused', () => {
    const dataDir = join(dir(), 'nested', 'data');
    const first = loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir });
    assert.equal(first.secretKeyGenerated, true);
    const file = join(dataDir, 'secret_key');
    assert.ok(existsSync(file));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(dataDir).mode & 0o077, 0, 'DATA_DIR is not readable by others');
    assert.ok(Buffer.byteLength(first.secretKey) >= 32, 'a generated key is at least 256 bits');
    assert.equal(readFileSync(file, 'utf8').trim(), first.secretKey);

    const second = loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir });
    assert.equal(second.secretKey, first.secretKey);
    // Another directory, another key.
    assert.notEqual(loadConfig({ NODE_ENV: 'development', DATA_DIR: dir() }).secretKey, first.secretKey);
  });

  test('a DATA_DIR where the key cannot be kept is a configuration error naming DATA_DIR', () => {
    // A path below a regular file can never be created (ENOTDIR), whoever runs the test.
    const file = join(dir(), 'not-a-directory');
    writeFileSync(file, 'x');
    const err = refuses({ NODE_ENV: 'development', DATA_DIR: join(file, 'data') }, 'DATA_DIR');
    assert.match(err.message, /SECRET_KEY/, 'says how to fix it');
    // With SECRET_KEY set nothing is written there at load time.
    assert.equal(loadConfig({ NODE_ENV: 'development', DATA_DIR: join(file, 'data'), SECRET_KEY: GOOD_SECRET }).secretKey, GOOD_SECRET);
  });

  test('an explicit SECRET_KEY writes nothing', () => {
    const dataDir = dir();
    loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir, SECRET_KEY: GOOD_SECRET });
    assert.equal(existsSync(join(dataDir, 'secret_key')), false);
  });

  for (const backend of backends()) {
    test(`a token from app A verifies in app B on the same DATA_DIR (${backend})`, async () => {
      const dataDir = dir();
      const env = { SECRET_KEY: undefined, NODE_ENV: 'development', DATA_DIR: dataDir };
      const tdb = await openTestDatabase(backend);
      const a = await startApp({ db: tdb, env });
      let b;
      let aOpen = true;
      try {
        assert.equal(a.config.secretKeyGenerated, true);
        const u = await registerAndLogin(a.http);
        b = await startApp({ db: tdb, env });
        assert.equal(b.config.secretKey, a.config.secretKey);
        // App A stops; its token keeps working on the next one.
        await a.close();
        aOpen = false;
        const me = await b.http.get('/users/me', u.access);
        assert.equal(me.status, 200, me.text);
        assert.equal(me.body.id, u.id);
        // Control: an app with another key refuses it.
        const other = await startApp({ db: tdb, env: { NODE_ENV: 'development', SECRET_KEY: undefined } });
        try {
          assert.equal((await other.http.get('/users/me', u.access)).status, 401);
        } finally {
          await other.close();
        }
      } finally {
        await b?.close();
        if (aOpen) await a.close();
        await tdb.close();
      }
    });
  }
});

describe('the process refuses a bad configuration with one line', () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ['production without SECRET_KEY', { NODE_ENV: 'production' }, 'SECRET_KEY'],
    ['production with a 31-byte SECRET_KEY', { NODE_ENV: 'production', SECRET_KEY: 'x'.repeat(31) }, 'SECRET_KEY'],
    ['a bad PORT', { NODE_ENV: 'production', SECRET_KEY: GOOD_SECRET, PORT: 'eighty' }, 'PORT'],
  ];
  for (const [name, env, variable] of cases) {
    test(name, async () => {
      const r = await runToExit({ ...env, DATA_DIR: dir() });
      assert.notEqual(r.code, 0, 'exits non-zero');
      assert.equal(r.signal, null, 'exits by itself');
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
      assert.match(lines[0]!, new RegExp(`\\b${variable}\\b`));
      assert.doesNotMatch(r.stderr, /\bat .+:\d+:\d+/, 'no stack trace');
      if (env.SECRET_KEY) assert.ok(!r.stderr.includes(env.SECRET_KEY), 'the secret is not echoed');
      assert.equal(r.stdout, '');
    });
  }
});
