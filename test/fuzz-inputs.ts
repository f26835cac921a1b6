// Inputs for the property-based fuzz test (test/fuzz.test.ts): requests for
// the operations of /openapi.json, with valid values where the schema says
// what is valid and hostile ones everywhere: wrong types, huge and deeply
// nested values, Unicode tricks, injection shapes, prototype-pollution keys,
// duplicate keys and parameters, bad percent-encoding, odd content types.
// A generated request is plain data (printable, so a failure shows it);
// `Ref`s name values known only at run time (a live token, a post's id).
import fc from 'fast-check';

/** A value of the running world (tokens, ids), filled in when the request is sent. */
export class Ref {
  constructor(readonly name: string) {}
  [fc.toStringMethod](): string {
    return `ref(${this.name})`;
  }
}

/** Text put into a URL or form as is, not percent-encoded (bad escapes, raw Latin-1 bytes). */
export class Raw {
  constructor(readonly text: string) {}
  [fc.toStringMethod](): string {
    return `raw(${JSON.stringify(this.text)})`;
  }
}

/** JSON text that is not JSON.stringify's: `NaN`, `1e99999`, deep nesting. */
export class RawJson {
  constructor(readonly text: string) {}
  [fc.toStringMethod](): string {
    return `rawJson(${JSON.stringify(this.text.length > 80 ? `${this.text.slice(0, 80)}…(${this.text.length})` : this.text)})`;
  }
}

/** A JSON object as a list of members, so that keys may repeat and `__proto__` is an ordinary key. */
export class JObj {
  constructor(readonly entries: [string, JV][]) {}
  [fc.toStringMethod](): string {
    return `obj(${fc.stringify(this.entries)})`;
  }
}

export type Scalar = string | number | boolean | null | Ref | Raw | RawJson;
export type JV = Scalar | JV[] | JObj;

export type AuthKind =
  | 'none'
  | 'user'
  | 'admin'
  | 'refresh-as-bearer'
  | 'garbage'
  | 'alg-none'
  | 'forged'
  | 'huge'
  | 'two-headers'
  | 'basic'
  | 'lowercase-scheme'
  | 'empty-bearer';

export type BodyKind = 'json' | 'form' | 'multipart' | 'multipart-broken' | 'text' | 'no-type' | 'odd-type' | 'bytes' | 'deep' | 'oversized';

export interface BodySpec {
  kind: BodyKind;
  value: JV;
  contentType?: string;
  bytes?: Uint8Array;
  /** deep: nesting depth; oversized: bytes of padding. */
  size?: number;
}

export interface FuzzRequest {
  method: string;
  /** The OpenAPI path template, e.g. /posts/{id}. */
  template: string;
  pathParams: Record<string, JV>;
  query: [string, JV][];
  auth: AuthKind;
  /** For `forged`: claims to override in a correctly signed token. */
  claims?: Record<string, unknown>;
  body?: BodySpec;
}

// ---------------------------------------------------------------- strings

export const FDFA = '\uFDFA'; // ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM: NFKC makes it 18 characters

const INJECTIONS = [
  "' OR '1'='1",
  "admin'--",
  "'; DROP TABLE users; --",
  "1); SELECT pg_sleep(0); --",
  '" OR 1=1 --',
  "x' UNION SELECT password_hash FROM users --",
  '$1',
  '\\',
  '%s%s%n',
  '{{7*7}}',
  '${7*7}',
  '<script>alert(1)</script>',
  '../../../../etc/passwd',
  '..%2f..%2fetc%2fpasswd',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '{"__proto__":{"admin":true}}',
  '{"a":1}',
  '[]',
  'null',
  'true',
  'undefined',
  'NaN',
  '-1',
  '0',
  '1e309',
  '9007199254740993',
];

const UNICODE = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  'a\ud800b',
  '\udc00\ud800',
  '\u202e\u202dgnp.exe',
  '\u200f\u200e',
  '\u200b\u200d\ufeff',
  'e\u0301\u0301\u0301',
  'ＡＤＭＩＮ',
  'ǅ',
  'İ',
  'ß',
  'ﬃ',
  'Å',
  '\u2028\u2029',
  '\r\n',
  '\t',
  '\u001b[31m',
  '😀',
  '👩‍👩‍👧‍👦',
  FDFA,
  '\uffff',
  '\ufffd',
];

/** Strings the service knows: scopes, grant types, enum members. */
const WORDS = ['admin', 'ADMIN', 'me', 'me admin', 'posts:write', 'me posts:write admin', 'local', 'others', 'global', 'password', 'refresh_token', 'access_token', 'user', 'true', 'false'];

/** Any UTF-16 code units, unpaired surrogates included. */
const codeUnits = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 40 });

/** Long strings: U+FDFA near the /auth body limit (64 KiB) as JSON or form, combining marks, emoji, plain. */
const huge = fc.oneof(
  fc.constantFrom(300, 321, 2_000, 7_000, 20_000).map((n) => FDFA.repeat(n)),
  fc.constantFrom(129, 257, 5_000).map((n) => '😀'.repeat(n)),
  fc.constantFrom(1_000, 20_000).map((n) => `a${'\u0301'.repeat(n)}`),
  fc.constantFrom(201, 257, 321, 4_097, 60_000, 100_001).map((n) => 'a'.repeat(n)),
);

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...INJECTIONS) },
  { weight: 3, arbitrary: fc.constantFrom(...UNICODE) },
  { weight: 2, arbitrary: fc.constantFrom(...WORDS) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...UNICODE, ...INJECTIONS), fc.constantFrom(...UNICODE, ...WORDS)).map(([a, b]) => a + b) },
  { weight: 2, arbitrary: codeUnits },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  { weight: 1, arbitrary: huge },
);

/** Bad percent-encoding and raw bytes for URLs and forms. */
export const rawText: fc.Arbitrary<Raw> = fc
  .constantFrom('%', '%Z', '%zz', '%2', '%%', '%00', '%ED%A0%80', '%C0%AF', '%C0%80', '%FF%FE', '%E2%82', '+', '%2F', '%2e%2e', '\u00ff\u00fe', '\u00e9', '%u0041', ';', '&&', '==', '#')
  .map((t) => new Raw(t));

// ---------------------------------------------------------------- JSON values

const rawJson = fc
  .constantFrom('NaN', 'Infinity', '-0', '1e99999', '-1e99999', '0x10', '01', '1.', '.5', '9007199254740993', '"\\ud800"', '"\\u0000"', '"\\uDFFF\\uD800"', 'tru', '"unterminated', '{}}', '[,]')
  .map((t) => new RawJson(t));

const scalar: fc.Arbitrary<Scalar> = fc.oneof(
  { weight: 5, arbitrary: hostileString },
  { weight: 2, arbitrary: fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.constantFrom(0, -1, 1e308, 2 ** 53 + 1, 101, 0.5)) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: rawJson },
);

const POLLUTING_KEYS = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf', '__defineGetter__'];

export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...POLLUTING_KEYS) },
  { weight: 1, arbitrary: fc.constantFrom('', 'a[b]', 'a.b', '$where', '$gt', 'x'.repeat(200), 'user[role]', 'role', 'disabled', 'id', 'password_hash') },
  { weight: 1, arbitrary: hostileString.filter((s) => s.length < 2_000) },
);

export const jsonValue: fc.Arbitrary<JV> = fc.letrec<{ value: JV; arr: JV[]; obj: JObj }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 4 }, scalar, tie('arr'), tie('obj')),
  arr: fc.array(tie('value'), { maxLength: 4 }),
  obj: fc.array(fc.tuple(hostileKey, tie('value')), { maxLength: 4 }).map((e) => new JObj(e)),
})).value;

/** `{"__proto__": {...}}` and friends: members that would pollute a prototype if merged naively. */
export const pollution: fc.Arbitrary<[string, JV][]> = fc
  .tuple(fc.constantFrom('__proto__', 'constructor', 'prototype'), fc.constantFrom('admin', 'role', 'isAdmin', 'disabled', 'scopes', 'prototype'))
  .map(([k, inner]) => [[k, new JObj([[inner, inner === 'prototype' ? new JObj([['role', 'admin']]) : true]])]]);

// ---------------------------------------------------------------- from the OpenAPI schemas

export type Schema = Record<string, any>;

/** Values of the running world that fit a field by its name. */
function knownValues(name: string): JV[] {
  switch (name) {
    case 'username':
      return [new Ref('username'), new Ref('email'), new Ref('adminUsername'), new Ref('freshName'), 'nobody_here'];
    case 'password':
    case 'current_password':
      return [new Ref('password'), 'wrong-Password-123'];
    case 'new_password':
      return [new Ref('password'), 'Another-plum-58-anchor', 'short', 'password'];
    case 'refresh_token':
      return [new Ref('refresh'), new Ref('adminRefresh'), `ghr_${'A'.repeat(43)}`, 'ghr_'];
    case 'token':
      return [new Ref('refresh'), new Ref('access'), new Ref('adminAccess'), new Ref('forgedAccess'), 'ghr_x'];
    case 'grant_type':
      return ['password', 'refresh_token', 'client_credentials', 'authorization_code', 'urn:ietf:params:oauth:grant-type:jwt-bearer'];
    case 'token_type_hint':
      return ['refresh_token', 'access_token', 'id_token'];
    case 'email':
      return [new Ref('freshEmail'), new Ref('email'), new Ref('adminEmail'), 'not-an-address', 'a@b'];
    case 'id':
      return [new Ref('postId'), new Ref('draftId'), new Ref('userId'), new Ref('adminId'), new Ref('sessionId'), '00000000-0000-0000-0000-000000000000'];
    case 'cursor':
      return [new Ref('cursor'), 'WyIyMDI0LTAyLTMwVDAwOjAwOjAwLjAwMDAwMFoiLCIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAiXQ', 'eyJ0cyI6MX0', '!!!'];
    case 'author':
      return [new Ref('username'), new Ref('adminUsername')];
    case 'scope':
      return ['me', 'admin', 'posts:write', 'me posts:write admin', 'local', 'others', 'global', ''];
    default:
      return [];
  }
}

/** A value the schema allows, or at its bounds and just past them. */
export function fromSchema(schema: Schema | undefined, name = ''): fc.Arbitrary<JV> {
  const known = knownValues(name);
  const own = schemaValue(schema ?? {}, name);
  // The first known value is the one that gets a request past validation to the handler's own work.
  return known.length ? fc.oneof({ weight: 3, arbitrary: fc.constant(known[0]!) }, { weight: 2, arbitrary: fc.constantFrom(...known) }, { weight: 2, arbitrary: own }) : own;
}

function schemaValue(s: Schema, name: string): fc.Arbitrary<JV> {
  const alts = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
  if (alts?.length) return fc.oneof(...alts.map((a) => schemaValue(a, name)));
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as JV[]));
  if (s.const !== undefined) return fc.constant(s.const as JV);
  switch (s.type) {
    case 'string': {
      const min = (s.minLength as number | undefined) ?? 0;
      const max = (s.maxLength as number | undefined) ?? 64;
      const edges = [min, max, max + 1].filter((n) => n >= 0 && n <= 200_001);
      return fc.oneof(
        { weight: 3, arbitrary: fc.string({ minLength: min, maxLength: Math.min(max, 40) }) },
        { weight: 1, arbitrary: fc.constantFrom(...edges).map((n) => 'x'.repeat(n)) },
        ...(s.format === 'uuid' ? [{ weight: 2, arbitrary: fc.uuid() as fc.Arbitrary<JV> }] : []),
      );
    }
    case 'integer':
    case 'number': {
      const min = (s.minimum as number | undefined) ?? -1_000;
      const max = (s.maximum as number | undefined) ?? 1_000;
      return fc.oneof(fc.integer({ min, max }), fc.constantFrom(min - 1, max + 1, min, max));
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(schemaValue((s.items as Schema) ?? {}, name), { maxLength: 3 });
    case 'object': {
      const props = Object.entries((s.properties ?? {}) as Record<string, Schema>);
      const required = new Set((s.required ?? []) as string[]);
      if (props.length === 0) return fc.constant(new JObj([]));
      return fc
        .tuple(...props.map(([k, ps]) => fc.option(fromSchema(ps, k), { nil: undefined, freq: required.has(k) ? 8 : 3 })))
        .map((vals) => new JObj(props.flatMap(([k], i) => (vals[i] === undefined ? [] : [[k, vals[i]!] as [string, JV]]))));
    }
    default:
      return scalar;
  }
}

/** A body for a schema: mostly valid members, each possibly replaced by a hostile value; extra and repeated members. */
export function bodyValue(schema: Schema | undefined): fc.Arbitrary<JV> {
  const valid = fromSchema(schema ?? { type: 'object' });
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    {
      weight: 6,
      arbitrary: fc
        .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.oneof(scalar, jsonValue)), { maxLength: 3 }), fc.array(fc.tuple(hostileKey, jsonValue), { maxLength: 2 }), fc.option(pollution, { freq: 3 }), fc.boolean())
        .map(([base, swaps, extra, polluted, duplicate]) => {
          if (!(base instanceof JObj)) return base;
          const entries = [...base.entries];
          for (const [i, v] of swaps) if (entries.length) entries[i % entries.length] = [entries[i % entries.length]![0], v];
          if (duplicate && entries.length) entries.push([entries[0]![0], entries.length > 1 ? entries[1]![1] : 'again']);
          return new JObj([...entries, ...extra, ...(polluted ?? [])]);
        }),
    },
    { weight: 1, arbitrary: jsonValue },
  );
}

const ODD_TYPES = [
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  'application/json;;;',
  'application/vnd.api+json',
  'application/merge-patch+json',
  'application/x-www-form-urlencoded; charset=iso-8859-1',
  'multipart/form-data',
  'multipart/form-data; boundary=',
  'multipart/mixed; boundary=x',
  'text/html',
  'application/xml',
  'application/octet-stream',
  '*/*',
  'json',
  ';',
  'application/json, text/plain',
];

/** A request body: the schema's value as JSON, a form, multipart, text, or bytes, under fitting or odd content types. */
export function bodySpec(schema: Schema | undefined, declared: string[]): fc.Arbitrary<BodySpec> {
  const value = bodyValue(schema);
  const usual: fc.Arbitrary<BodyKind> = declared.length > 1 ? fc.constantFrom('json', 'form', 'multipart') : fc.constant('json');
  return fc.oneof(
    { weight: 10, arbitrary: fc.record({ kind: usual, value }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom<BodyKind>('json', 'form', 'multipart', 'text', 'no-type', 'multipart-broken'), value }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant<BodyKind>('odd-type'), value, contentType: fc.constantFrom(...ODD_TYPES) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant<BodyKind>('bytes'), value: fc.constant(null), bytes: fc.uint8Array({ maxLength: 64 }), contentType: fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=b') }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant<BodyKind>('deep'), value: fc.constant(null), size: fc.constantFrom(33, 200, 5_000, 60_000) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant<BodyKind>('oversized'), value, size: fc.constantFrom(70 * 1024, 1024 * 1024 + 1) }) },
  );
}

export const authKind: fc.Arbitrary<AuthKind> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<AuthKind>('user', 'admin') },
  { weight: 2, arbitrary: fc.constant<AuthKind>('none') },
  { weight: 3, arbitrary: fc.constantFrom<AuthKind>('refresh-as-bearer', 'garbage', 'alg-none', 'forged', 'huge', 'two-headers', 'basic', 'lowercase-scheme', 'empty-bearer') },
);

/** Claims a correctly signed token may carry that no issued token does. */
export const forgedClaims: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.constantFrom<Record<string, unknown>>(
    { sub: 'not-a-uuid' },
    { sub: '00000000-0000-0000-0000-000000000000' },
    { sub: 12345 },
    { sub: null },
    { sub: ["'; DROP TABLE users; --"] },
    { sid: 'not-a-uuid' },
    { sid: '00000000-0000-0000-0000-000000000000' },
    { jti: "' OR 1=1 --" },
    { scope: ['me', 'admin'] },
    { scope: 'me\u0000admin' },
    { exp: 'tomorrow' },
    { exp: 1e308 },
    { iat: -1 },
    { nbf: 'now' },
    { aud: ['gatehouse', 'other'] },
    { username: FDFA.repeat(300) },
    JSON.parse('{"__proto__": {"admin": true}}') as Record<string, unknown>,
  ),
  fc.dictionary(fc.constantFrom('sub', 'sid', 'jti', 'scope', 'exp', 'iat', 'username'), scalar, { maxKeys: 2 }),
);
