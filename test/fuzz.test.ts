// Property-based fuzzing of every operation the running service lists in
// /openapi.json (read at test time: paths, methods, parameters, request
// bodies and their content types), with valid and hostile input (see
// fuzz-inputs.ts), logged in as a user and as an admin so that protected
// routes are exercised past the guard. For every response:
//   - no 5xx, except 503 with Retry-After;
//   - no stack trace, SQL, file path or internal error message in the body
//     (text the request itself sent and the service echoes is not a leak);
//   - the contract's error format: problem+json with type/title/status/
//     detail/code, or RFC 6749 {error, error_description} for the 400s of
//     /auth/token and /auth/revoke;
// and afterwards the service's memory is back near where it started, and
// the stores hold no huge rate-limit keys.
//
// FUZZ_RUNS (default 600 per backend) sets the number of requests; FUZZ_SEED
// (and FUZZ_PATH, printed with it) replays a failure.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { encodeCursor } from '../src/http/pagination.js';
import { authKind, bodySpec, type BodySpec, FDFA, forgedClaims, fromSchema, hostileKey, hostileString, JObj, Raw, RawJson, Ref, rawText, type FuzzRequest, type JV, type Schema } from './fuzz-inputs.js';
import { hasServer, makeAdmin, registerAndLogin, startApp, STRONG_PASSWORD, TEST_SECRET, type LoggedIn, type TestApp } from './helpers.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 600);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const PATH = process.env.FUZZ_PATH;

// ---------------------------------------------------------------- the world the requests run in

/** A user and an admin, logged in, with posts; put back as they were when a request changed them. */
class World {
  user!: LoggedIn;
  admin!: LoggedIn;
  private hashes = new Map<string, string>();
  postId = '';
  draftId = '';
  /** Set when a request may have revoked a token, changed a user or deleted a post. */
  dirty = false;
  restores = 0;
  private fresh = 0;

  constructor(readonly app: TestApp) {}

  async setup(): Promise<void> {
    this.user = await registerAndLogin(this.app.http);
    this.admin = await makeAdmin(this.app, await registerAndLogin(this.app.http));
    for (const u of [this.user, this.admin]) {
      const r = await this.app.core.db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [u.id]);
      this.hashes.set(u.id, r.rows[0]!.password_hash);
    }
    await this.ensurePosts();
  }

  private async ensurePosts(): Promise<void> {
    const exists = async (id: string) => id !== '' && (await this.app.core.db.query('SELECT 1 FROM posts WHERE id = $1', [id])).rows.length > 0;
    if (!(await exists(this.postId))) this.postId = (await this.post({ title: 'Published', body: 'Hello', published: true })).id;
    if (!(await exists(this.draftId))) this.draftId = (await this.post({ title: 'Draft', body: 'Secret' })).id;
  }

  private async post(json: unknown): Promise<{ id: string }> {
    const r = await this.app.http.post('/posts', json, this.user.access);
    assert.equal(r.status, 201, r.text);
    return r.body;
  }

  /** Undoes what the last requests did to the two accounts and the posts. */
  async restore(): Promise<void> {
    if (!this.dirty) return;
    this.restores++;
    const db = this.app.core.db;
    for (const [u, role] of [[this.user, 'user'], [this.admin, 'admin']] as const) {
      await db.query('UPDATE users SET disabled = false, role = $2, password_hash = $3, email = $4 WHERE id = $1', [u.id, role, this.hashes.get(u.id), u.email]);
      await this.app.core.userStates.changed(u.id);
    }
    const relogin = async (u: LoggedIn) => {
      const r = await this.app.http.token({ grant_type: 'password', username: u.username, password: STRONG_PASSWORD });
      assert.equal(r.status, 200, `re-login: ${r.text}`);
      return { ...u, access: r.body.access_token as string, refresh: r.body.refresh_token as string };
    };
    this.user = await relogin(this.user);
    this.admin = await relogin(this.admin);
    await this.ensurePosts();
    this.dirty = false;
  }

  private sessionOf(token: string): string {
    return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid;
  }

  /** A correctly signed token of the user with some claims replaced (we hold the test secret). */
  forge(claims: Record<string, unknown>): string {
    const [h, p] = this.user.access.split('.') as [string, string];
    const payload = { ...JSON.parse(Buffer.from(p, 'base64url').toString()), ...claims };
    const body = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    return `${body}.${createHmac('sha256', TEST_SECRET).update(body).digest('base64url')}`;
  }

  resolve(name: string): string {
    const values: Record<string, () => string> = {
      username: () => this.user.username,
      email: () => this.user.email,
      password: () => STRONG_PASSWORD,
      adminUsername: () => this.admin.username,
      adminEmail: () => this.admin.email,
      access: () => this.user.access,
      adminAccess: () => this.admin.access,
      refresh: () => this.user.refresh,
      adminRefresh: () => this.admin.refresh,
      forgedAccess: () => this.forge({ sub: 'not-a-uuid' }),
      userId: () => this.user.id,
      adminId: () => this.admin.id,
      postId: () => this.postId,
      draftId: () => this.draftId,
      sessionId: () => this.sessionOf(this.user.access),
      // A name and an address no account has yet, so that registrations can succeed.
      freshName: () => `fz${process.pid % 10000}_${++this.fresh}`,
      freshEmail: () => `fz${process.pid % 10000}_${++this.fresh}@example.com`,
      cursor: () => encodeCursor({ ts: '2024-01-02T03:04:05.123456Z', id: this.postId }),
    };
    const f = values[name];
    if (!f) throw new Error(`unknown ref ${name}`);
    return f();
  }

  tokens(): string[] {
    return [this.user.access, this.admin.access];
  }
}

// ---------------------------------------------------------------- encoding a request

/** Percent-encodes the UTF-8 of a string (an unpaired surrogate becomes U+FFFD's bytes, as any client sends it). */
function pct(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

class Encoder {
  /** Every string the request carries, decoded: what the service may legitimately echo. */
  readonly sent: string[] = [];
  constructor(private readonly world: World) {}

  text(v: JV): string {
    if (v instanceof Ref) return this.keep(this.world.resolve(v.name));
    if (v instanceof Raw || v instanceof RawJson) return this.keep(v.text);
    if (v instanceof JObj || Array.isArray(v)) return this.json(v);
    return this.keep(String(v));
  }

  private keep(s: string): string {
    this.sent.push(s);
    return s;
  }

  /** URL or form text: percent-encoded, except Raw pieces. */
  url(v: JV): string {
    return v instanceof Raw ? this.keep(v.text) : pct(this.text(v));
  }

  json(v: JV): string {
    if (v instanceof JObj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(this.keep(k))}:${this.json(x)}`).join(',')}}`;
    if (Array.isArray(v)) return `[${v.map((x) => this.json(x)).join(',')}]`;
    if (v instanceof RawJson) return this.keep(v.text);
    if (v instanceof Ref || v instanceof Raw) return JSON.stringify(this.text(v));
    if (typeof v === 'string') return JSON.stringify(this.keep(v));
    return JSON.stringify(v) ?? 'null';
  }

  /** Form members: nested objects as a[b]=…, arrays as repeated keys (both are what clients send). */
  fields(v: JV, prefix = ''): [string, JV][] {
    if (v instanceof JObj) return v.entries.flatMap(([k, x]) => this.fields(x, prefix ? `${prefix}[${k}]` : k));
    if (Array.isArray(v)) return prefix ? v.flatMap((x) => this.fields(x, prefix)) : [['', new RawJson(this.json(v))]];
    return [[prefix, v]];
  }

  form(v: JV): string {
    return this.fields(v)
      .map(([k, x]) => `${pct(this.keep(k))}=${this.url(x)}`)
      .join('&');
  }

  multipart(v: JV, boundary: string, broken: boolean): string {
    // The field name is sent too (and echoed in a validation error's path), like form keys above.
    const parts = this.fields(v).map(([k, x]) => `--${boundary}\r\ncontent-disposition: form-data; name="${this.keep(k.replace(/["\r\n]/g, '_'))}"\r\n\r\n${this.text(x)}\r\n`);
    if (broken) return `${parts.join('').slice(0, -7)}--${boundary}\r\ncontent-disposition: form-data; name="f"; filename="../../x.sh"\r\n\r\n#!/bin/sh\r\n`;
    return `${parts.join('')}--${boundary}--\r\n`;
  }
}

interface Wire {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body?: Buffer;
  sent: string[];
}

function encode(world: World, req: FuzzRequest): Wire {
  const enc = new Encoder(world);
  let path = req.template.replace(/\{(\w+)\}/g, (_, name: string) => enc.url(req.pathParams[name] ?? ''));
  if (req.query.length) path += `?${req.query.map(([k, v]) => `${pct(enc.text(k))}=${enc.url(v)}`).join('&')}`;
  const headers: Record<string, string | string[]> = {};
  const [access, adminAccess] = world.tokens() as [string, string];
  const bearer: Record<string, () => string | string[] | undefined> = {
    none: () => undefined,
    user: () => `Bearer ${access}`,
    admin: () => `Bearer ${adminAccess}`,
    'refresh-as-bearer': () => `Bearer ${world.user.refresh}`,
    garbage: () => `Bearer ${access.slice(0, -4)}AAAA`,
    'alg-none': () => `Bearer ${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${access.split('.')[1]}.`,
    forged: () => `Bearer ${world.forge(req.claims ?? {})}`,
    huge: () => `Bearer ${'A'.repeat(9_000)}`,
    'two-headers': () => [`Bearer ${access}`, `Bearer ${adminAccess}`],
    basic: () => `Basic ${Buffer.from(`${world.user.username}:${STRONG_PASSWORD}`).toString('base64')}`,
    'lowercase-scheme': () => `bearer ${access}`,
    'empty-bearer': () => 'Bearer ',
  };
  const authorization = bearer[req.auth]!();
  if (authorization !== undefined) headers.authorization = authorization;
  if (req.template.startsWith('/auth/browser/')) {
    // Past the CSRF gate (its refusals have their own tests), with the cookie standing for the credential.
    headers['x-requested-with'] = 'gatehouse';
    headers.origin = new URL(world.app.config.publicUrl).origin;
    const cookie: Record<string, string | undefined> = { user: world.user.refresh, admin: world.admin.refresh, garbage: 'ghr_garbage', huge: 'A'.repeat(9_000) };
    if (cookie[req.auth] !== undefined) headers.cookie = `gh_refresh=${cookie[req.auth]}`;
  }
  const b = req.body;
  let body: string | Buffer | undefined;
  if (b) {
    const boundary = 'fuzzBoundary7MA4YWxkTrZu0gW';
    const deep = (n: number) => (n % 2 ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + '1' + '}'.repeat(n));
    const padded = (json: string) => `${json.slice(0, 1)}${' '.repeat(b.size ?? 0)}${json.slice(1)}`;
    const kinds: Record<BodySpec['kind'], () => [string | undefined, string | Buffer]> = {
      json: () => ['application/json', enc.json(b.value)],
      oversized: () => ['application/json', padded(enc.json(b.value))],
      form: () => ['application/x-www-form-urlencoded', enc.form(b.value)],
      multipart: () => [`multipart/form-data; boundary=${boundary}`, enc.multipart(b.value, boundary, false)],
      'multipart-broken': () => [`multipart/form-data; boundary=${boundary}`, enc.multipart(b.value, boundary, true)],
      text: () => ['text/plain', enc.text(b.value)],
      'no-type': () => [undefined, enc.json(b.value)],
      'odd-type': () => [b.contentType, enc.json(b.value)],
      bytes: () => [b.contentType, Buffer.from(b.bytes ?? [])],
      deep: () => ['application/json', deep(b.size ?? 1)],
    };
    const [type, text] = kinds[b.kind]();
    if (type !== undefined) headers['content-type'] = type;
    body = text;
  }
  const buf = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  if (buf) headers['content-length'] = String(buf.length);
  return { method: req.method, path, headers, body: buf, sent: enc.sent };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One request over a kept-alive connection; the answer even when the server stops reading an oversized body. */
function send(agent: http.Agent, base: URL, w: Wire): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const req = http.request({ agent, host: base.hostname, port: base.port, method: w.method, path: w.path, headers: w.headers, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (err) => !settled && reject(err));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      // A server may answer 413 and close before an oversized body is written out: no answer to read then.
      if ((err.code === 'EPIPE' || err.code === 'ECONNRESET') && (w.body?.length ?? 0) > 64 * 1024) {
        settled = true;
        resolve({ status: 413, headers: { 'content-type': 'application/problem+json' }, text: '{"type":"about:blank","title":"Payload Too Large","status":413,"detail":"(connection closed)","code":"payload_too_large"}' });
      } else reject(err);
    });
    req.end(w.body);
  });
}

// ---------------------------------------------------------------- what every answer must be

const LEAKS: [string, RegExp][] = [
  ['stack trace', /\n\s+at [^\n]+:\d+:\d+/],
  ['stack frame', /\bat (?:async )?[\w$.<>]+ \((?:file:|node:|\/)[^)]*\)/],
  ['file path', /(?:\/(?:work|home|usr|tmp|app|opt|root)\/[\w.-]+\/|(?<![\w-])[\w-]{1,80}\.(?:ts|js|mjs):\d+|node_modules|node:internal)/],
  ['SQL', /\b(?:SELECT\s[\s\S]*?\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b/i],
  ['SQL error', /syntax error at or near|relation "[^"]*"|violates [\w ]*constraint|duplicate key value|invalid input (?:syntax|value) for|column "[^"]*"|operator does not exist|\bpg_\w+|PGlite|SQLSTATE/i],
  ['internal error', /\b(?:TypeError|ReferenceError|RangeError|SyntaxError|Cannot read propert|is not a function|is not defined|undefined is not|Maximum call stack|FST_ERR_\w+|ERR_[A-Z_]{4,}|ECONN\w+|EPIPE|ajv|busboy|Unexpected token|JSON at position)\b/],
];

const OAUTH_ERRORS = new Set(['invalid_request', 'invalid_grant', 'unsupported_grant_type', 'invalid_scope', 'invalid_client', 'unsupported_token_type']);

function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      strings(x, out);
    }
  }
  return out;
}

/** Everything wrong with one answer (empty: it is right). */
export function problemsWith(req: FuzzRequest, w: Wire, a: Answer): string[] {
  const out: string[] = [];
  const ct = String(a.headers['content-type'] ?? '');
  if (a.status >= 500 && !(a.status === 503 && /^\d+$/.test(String(a.headers['retry-after'] ?? '')))) out.push(`status ${a.status}`);
  let parsed: unknown;
  if (a.text !== '') {
    if (!/json/.test(ct)) out.push(`a body of type "${ct}"`);
    else {
      try {
        parsed = JSON.parse(a.text);
      } catch {
        out.push('a body that is not JSON');
      }
    }
  }
  // Echoes of what the request sent are not leaks; anything else matching is.
  const sent = w.sent.join('\n');
  for (const s of parsed === undefined ? [a.text] : strings(parsed)) {
    for (const [what, re] of LEAKS) {
      const m = re.exec(s);
      if (m && !sent.includes(m[0])) out.push(`${what} in the body: ${JSON.stringify(m[0])}`);
    }
  }
  // A page's script never sees a refresh token: it lives in the HttpOnly cookie only.
  if (req.template.startsWith('/auth/browser/') && /ghr_[A-Za-z0-9_-]{43}|"refresh_token"\s*:/.test(a.text)) out.push('a refresh token in a browser-session body');
  if (a.status < 400) return out;
  const body = (parsed ?? {}) as Record<string, unknown>;
  // A request Node's HTTP parser refuses (raw bytes in the request line, headers over the limit) reaches
  // no route: its answer is problem+json on every path.
  const unparsed = /[^\x21-\x7e]/.test(w.path) || a.status === 431;
  const oauth = !unparsed && req.method === 'POST' && (req.template === '/auth/token' || req.template === '/auth/revoke');
  if (oauth && a.status === 400) {
    if (!/^application\/json\b/.test(ct)) out.push(`an RFC 6749 error of type "${ct}"`);
    const keys = Object.keys(body).sort().join(',');
    if (keys !== 'error,error_description') out.push(`RFC 6749 members ${keys}`);
    if (!OAUTH_ERRORS.has(body.error as string)) out.push(`RFC 6749 error "${String(body.error)}"`);
    if (typeof body.error_description !== 'string') out.push('a non-string error_description');
  } else {
    if (!/^application\/problem\+json\b/.test(ct)) out.push(`an error of type "${ct}"`);
    for (const k of ['type', 'title', 'detail', 'code']) if (typeof body[k] !== 'string' || body[k] === '') out.push(`problem member ${k}: ${JSON.stringify(body[k])}`);
    if (body.status !== a.status) out.push(`problem status ${JSON.stringify(body.status)} ≠ ${a.status}`);
    if (body.errors !== undefined && !(Array.isArray(body.errors) && body.errors.every((e) => typeof e?.path === 'string' && typeof e?.message === 'string'))) {
      out.push('problem errors not [{path, message}]');
    }
  }
  // The browser-session endpoints' credential is their cookie, and their challenge says so.
  const challenge = req.template.startsWith('/auth/browser/') ? /^Cookie realm="gatehouse", cookie-name="gh_refresh"$/ : /^Bearer realm="gatehouse"/;
  if (a.status === 401 && !challenge.test(String(a.headers['www-authenticate'] ?? ''))) out.push('a 401 without its challenge');
  if (a.status === 429 && !/^\d+$/.test(String(a.headers['retry-after'] ?? ''))) out.push('a 429 without Retry-After');
  if (a.status === 405 && !a.headers.allow) out.push('a 405 without Allow');
  return out;
}

// ---------------------------------------------------------------- the operations of /openapi.json

interface Operation {
  method: string;
  template: string;
  params: { name: string; in: string; schema: Schema }[];
  body?: { schema: Schema; types: string[] };
}

function operations(doc: any): Operation[] {
  const ops: Operation[] = [];
  for (const [template, methods] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
    for (const [method, op] of Object.entries(methods)) {
      const content = op.requestBody?.content as Record<string, { schema: Schema }> | undefined;
      const types = Object.keys(content ?? {});
      ops.push({
        method: method.toUpperCase(),
        template,
        params: (op.parameters ?? []).map((p: any) => ({ name: p.name, in: p.in, schema: p.schema ?? {} })),
        body: content ? { schema: content[types[0]!]!.schema, types } : undefined,
      });
    }
  }
  return ops;
}

/** Requests for one operation: its parameters and body from its schemas, then bent. */
function requestFor(op: Operation): fc.Arbitrary<FuzzRequest> {
  const value = (name: string, schema: Schema) => fc.oneof({ weight: 3, arbitrary: fromSchema(schema, name) }, { weight: 2, arbitrary: hostileString as fc.Arbitrary<JV> }, { weight: 1, arbitrary: rawText as fc.Arbitrary<JV> });
  const pathParams = op.params.filter((p) => p.in === 'path');
  const queryParams = op.params.filter((p) => p.in === 'query');
  const query = fc
    .tuple(
      fc.tuple(...queryParams.map((p) => fc.option(value(p.name, p.schema), { nil: undefined }))),
      // Repeated and unknown parameters.
      fc.array(fc.tuple(fc.oneof(fc.constantFrom(...queryParams.map((p) => p.name), 'scope', 'limit'), hostileKey), value('', {})), { maxLength: 2 }),
    )
    .map(([own, extra]) => [...queryParams.flatMap((p, i) => (own[i] === undefined ? [] : [[p.name, own[i]!] as [string, JV]])), ...extra]);
  return fc.record({
    method: fc.constant(op.method),
    template: fc.constant(op.template),
    pathParams: fc.record(Object.fromEntries(pathParams.map((p) => [p.name, value(p.name, p.schema)]))) as fc.Arbitrary<Record<string, JV>>,
    query,
    auth: authKind,
    claims: forgedClaims,
    body: op.body ? fc.option(bodySpec(op.body.schema, op.body.types), { nil: undefined, freq: 8 }) : fc.constant(undefined),
  });
}

/** A request as a failure report shows it: method, path and body, long values cut. */
function describe(w: Wire, a?: Answer): string {
  const cut = (s: string) => (s.length > 600 ? `${s.slice(0, 600)}… (${s.length} characters)` : s);
  const headers = Object.fromEntries(Object.entries(w.headers).map(([k, v]) => [k, k === 'authorization' ? (Array.isArray(v) ? v.map((x) => x.slice(0, 40)) : v.slice(0, 40)) : v]));
  return [
    `${w.method} ${cut(w.path)}`,
    JSON.stringify(headers),
    w.body ? cut(w.body.toString('utf8')) : '(no body)',
    a ? `→ ${a.status} ${JSON.stringify(a.headers['content-type'])} ${cut(a.text)}` : '',
  ].join('\n');
}

const STATE_CHANGING = /^(POST \/auth\/logout|POST \/auth\/browser\/(refresh|logout)|DELETE \/users\/me\/sessions\/\{id\}|PATCH \/admin\/users\/\{id\}|PUT \/users\/me\/password|DELETE \/posts\/\{id\}|PATCH \/users\/me)$/;

// ---------------------------------------------------------------- memory

type Gc = () => void;
/** A real collection: node's own gc when exposed, else the flag turned on now (v8.setFlagsFromString). */
function collector(): Gc | undefined {
  const g = (globalThis as { gc?: Gc }).gc;
  if (g) return g;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as Gc;
  } catch {
    return undefined;
  }
}

async function settledMemory(gc: Gc | undefined): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage();
}

const MB = 1024 * 1024;
const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;

/** The largest rate-limit key the PostgreSQL server and Redis hold for this app, in bytes. */
async function largestStoredLimitKey(app: TestApp): Promise<{ postgres?: number; redis?: number }> {
  const out: { postgres?: number; redis?: number } = {};
  if (hasServer() && app.config.databaseUrl) {
    // Whatever table holds the counters (a rate-limiter store on PostgreSQL, where one exists).
    const tables = await app.core.db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'key' AND table_name LIKE '%rate%'`,
    );
    for (const { table_name } of tables.rows) {
      const r = await app.core.db.query<{ n: number | null }>(`SELECT max(octet_length(key::text))::int AS n FROM "${table_name}"`);
      out.postgres = Math.max(out.postgres ?? 0, r.rows[0]?.n ?? 0);
    }
  }
  if (app.config.redisUrl) {
    const redis = new Redis(app.config.redisUrl, { lazyConnect: true });
    try {
      await redis.connect();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${app.config.redisPrefix}*`, 'COUNT', 500);
        cursor = next;
        for (const k of keys) out.redis = Math.max(out.redis ?? 0, Buffer.byteLength(k) + ((await redis.call('MEMORY', 'USAGE', k)) as number | null ?? 0));
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  }
  return out;
}

// ---------------------------------------------------------------- the tests

interface Target {
  name: string;
  backend: 'pglite' | 'postgres';
  env: Record<string, string | undefined>;
}

const targets: Target[] = [{ name: 'PGlite, in-process limits', backend: 'pglite', env: {} }];
if (hasServer()) {
  targets.push({ name: `the PostgreSQL server${process.env.REDIS_URL ? ' and Redis' : ''}`, backend: 'postgres', env: process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {} });
}

/** Oversized login identifiers (finding 1's attack): each is as long as the /auth body limit lets it be. */
function oversizedIdentifiers(): Wire[] {
  const json = (u: string) => Buffer.from(JSON.stringify({ grant_type: 'password', username: u, password: 'x' }));
  const form = (u: string) => Buffer.from(`grant_type=password&password=x&username=${pct(u)}`);
  const wires: Wire[] = [];
  for (let i = 0; i < 20; i++) {
    // Distinct names, so that no limiter entry is shared: ~64 KiB of JSON, ~64 KiB of form.
    const name = `${i}${FDFA.repeat(21_000)}`;
    wires.push({ method: 'POST', path: '/auth/token', headers: { 'content-type': 'application/json' }, body: json(name), sent: [name] });
    const short = `${i}${FDFA.repeat(7_000)}`;
    wires.push({ method: 'POST', path: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form(short), sent: [short] });
  }
  return wires;
}

for (const target of targets) {
  test(`fuzz every /openapi.json operation on ${target.name} (FUZZ_RUNS=${RUNS}, FUZZ_SEED=${SEED})`, async (t) => {
    const t0 = performance.now();
    const phase = (what: string) => t.diagnostic(`${what} at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const app = await startApp({ backend: target.backend, env: target.env });
    phase('started');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const base = new URL(app.url);
    try {
      const world = new World(app);
      await world.setup();
      const doc = (await app.http.get('/openapi.json')).body;
      const ops = operations(doc);
      assert.ok(ops.length >= 15, `the OpenAPI document lists the operations (${ops.length})`);
      const gc = collector();

      const statuses = new Map<string, number>();
      const slowest: [number, string][] = [];
      const exchange = async (w: Wire, req?: FuzzRequest) => {
        const started = performance.now();
        const a = await send(agent, base, w);
        const ms = performance.now() - started;
        slowest.push([ms, `${w.method} ${req?.template ?? w.path} ${a.status} ${w.body?.length ?? 0}B ${req?.body?.kind ?? ''}`]);
        slowest.sort((x, y) => y[0] - x[0]).splice(8);
        const key = `${w.method} ${req?.template ?? w.path} ${a.status}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        return a;
      };
      /** One generated request: sent, its answer checked; the world put back first if the last one changed it. */
      const runOne = async (req: FuzzRequest) => {
        await world.restore();
        const w = encode(world, req);
        const a = await exchange(w, req);
        const sentToken = typeof w.headers.authorization === 'string' && world.tokens().some((tok) => w.headers.authorization === `Bearer ${tok}`);
        if ((a.status === 401 && sentToken) || (a.status < 300 && STATE_CHANGING.test(`${req.method} ${req.template}`))) world.dirty = true;
        const wrong = problemsWith(req, w, a);
        if (wrong.length) throw new Error(`${wrong.join('; ')}\n${describe(w, a)}`);
      };

      // Warm-up: every operation a few times, so that compiled code and caches are in place before measuring.
      for (const op of ops) for (const req of fc.sample(requestFor(op), { numRuns: 2, seed: SEED })) await runOne(req);
      await world.restore();
      phase('warmed up');
      const before = await settledMemory(gc);
      phase('measured');

      // The attack of finding 1, on purpose: 40 oversized identifiers must leave nothing behind.
      for (const w of oversizedIdentifiers()) {
        const a = await exchange(w);
        const wrong = problemsWith({ method: 'POST', template: '/auth/token', pathParams: {}, query: [], auth: 'none' }, w, a);
        assert.deepEqual(wrong, [], describe(w, a));
        assert.ok(a.status === 400 || a.status === 413, describe(w, a));
      }

      phase('oversized identifiers sent');
      const started = performance.now();
      const details = await fc.check(fc.asyncProperty(fc.oneof(...ops.map(requestFor)), runOne), {
        numRuns: RUNS,
        seed: SEED,
        path: PATH,
        endOnFailure: process.env.FUZZ_SHRINK !== '1',
      });
      t.diagnostic(`${details.numRuns} runs in ${((performance.now() - started) / 1000).toFixed(1)} s, ${world.restores} restores; slowest: ${JSON.stringify(slowest.map(([ms, what]) => `${ms.toFixed(0)} ms ${what}`))}`);
      if (details.failed) {
        const reason = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
        assert.fail(`fuzzing failed after ${details.numRuns} runs; replay with FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath} (FUZZ_SHRINK=1 to shrink)\n${reason}`);
      }

      await world.restore();
      const after = await settledMemory(gc);
      const heap = after.heapUsed - before.heapUsed;
      const rss = after.rss - before.rss;
      t.diagnostic(`seed ${SEED}; ${RUNS} runs; forced GC: ${gc ? 'yes' : 'no'}`);
      t.diagnostic(`heapUsed ${mb(before.heapUsed)} → ${mb(after.heapUsed)} (${mb(heap)}); rss ${mb(before.rss)} → ${mb(after.rss)} (${mb(rss)})`);
      t.diagnostic(`answers: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
      // Margins. With a forced collection, what is left is what the service keeps: the 40 oversized
      // identifiers alone would keep ≥ 30 MB if their normalised form were kept (18 × ~21 000 characters,
      // twice each), while a run that keeps nothing moves heapUsed by a few MB (compiled code, caches
      // filling to their bounds). Without one, garbage may still be counted: a wider margin.
      const heapMargin = (gc ? 16 : 48) * MB;
      assert.ok(heap < heapMargin, `the JS heap grew by ${mb(heap)} (margin ${mb(heapMargin)})`);
      // PGlite's database lives in WebAssembly memory that only grows (posts written, sessions opened), so
      // RSS is asserted on the PostgreSQL server only, where the database is another process.
      if (target.backend === 'postgres') assert.ok(rss < 64 * MB, `RSS grew by ${mb(rss)} (margin 64 MB)`);
    } finally {
      agent.destroy();
      await app.close();
    }
  });
}

// ---------------------------------------------------------------- what the fuzzer found, repeated on purpose

test('answers of the HTTP parser are problem details: headers over the limit (431), a request line that does not parse (400)', async () => {
  const app = await startApp();
  const agent = new http.Agent({ keepAlive: false });
  try {
    const base = new URL(app.url);
    const wire = (path: string): Wire => ({ method: 'GET', path, headers: {}, sent: [] });
    const huge = await send(agent, base, wire(`/posts?author=${'a'.repeat(20_000)}`));
    const bytes = await send(agent, base, wire('/auth/token?x=\u00ff\u00fe'));
    for (const [a, status, code] of [[huge, 431, 'headers_too_large'], [bytes, 400, 'bad_request']] as const) {
      assert.equal(a.status, status, a.text);
      assert.match(String(a.headers['content-type']), /^application\/problem\+json/);
      const body = JSON.parse(a.text);
      assert.deepEqual(Object.keys(body).sort(), ['code', 'detail', 'status', 'title', 'type']);
      assert.equal(body.status, status);
      assert.equal(body.code, code);
    }
  } finally {
    agent.destroy();
    await app.close();
  }
});

test('a login identifier over 320 characters is refused by the schema, before anything normalises it', async () => {
  const app = await startApp();
  try {
    for (const username of [FDFA.repeat(321), 'a'.repeat(321)]) {
      const r = await app.http.token({ grant_type: 'password', username, password: 'x' });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.body, { error: 'invalid_request', error_description: 'Invalid parameter /username' });
    }
    // 320 is still a login attempt like any other.
    const r = await app.http.token({ grant_type: 'password', username: FDFA.repeat(320), password: 'x' });
    assert.equal(r.body.error, 'invalid_grant', r.text);
  } finally {
    await app.close();
  }
});

test(
  'the PostgreSQL server and Redis keep no huge rate-limit keys for identifiers at the 320-character bound',
  {
    skip: !hasServer() && !process.env.REDIS_URL && 'needs DATABASE_URL or REDIS_URL',
  },
  async () => {
    const app = await startApp({ backend: hasServer() ? 'postgres' : 'pglite', env: process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {} });
    try {
      for (let i = 0; i < 5; i++) {
        const r = await app.http.post('/auth/token', { grant_type: 'password', username: `${i}${FDFA.repeat(319)}`, password: 'x' });
        assert.equal(r.body.error, 'invalid_grant', r.text);
      }
      const stored = await largestStoredLimitKey(app);
      // A counter's key is a hash or a bounded name, never the identifier as typed: a few hundred bytes at most.
      for (const [store, n] of Object.entries(stored)) assert.ok((n ?? 0) <= 1024, `${store} keeps a rate-limit key of ${n} bytes`);
    } finally {
      await app.close();
    }
  },
);
