// The one error type of Gatehouse. The core and the resources throw an
// AuthError with a stable machine-readable `code`; they never choose a wire
// format. The renderers in src/http/render.ts turn it into problem+json
// (RFC 9457, with `code` as an extension member), RFC 6749 §5.2 JSON on the
// OAuth endpoints, or an RFC 6750 challenge. The code also reaches the logs.

export interface FieldError {
  path: string;
  message: string;
}

/** RFC 6749 §5.2 error values. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_grant'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_client'
  | 'unsupported_token_type';

interface CodeSpec {
  status: number;
  /** Its RFC 6749 error on the OAuth endpoints; without one it is problem+json there too. */
  oauth?: OAuthErrorCode;
  /** An RFC 6750 challenge: `WWW-Authenticate` carries this error (null: the bare challenge). */
  challenge?: 'invalid_token' | 'insufficient_scope' | null;
}

/** Every code, its status and how the OAuth and Bearer formats spell it. */
export const ERROR_CODES = {
  invalid_request: { status: 400, oauth: 'invalid_request' },
  invalid_credentials: { status: 400, oauth: 'invalid_grant' },
  refresh_token_invalid: { status: 400, oauth: 'invalid_grant' },
  refresh_token_expired: { status: 400, oauth: 'invalid_grant' },
  refresh_token_reused: { status: 400, oauth: 'invalid_grant' },
  session_revoked: { status: 400, oauth: 'invalid_grant' },
  invalid_scope: { status: 400, oauth: 'invalid_scope' },
  unsupported_grant_type: { status: 400, oauth: 'unsupported_grant_type' },
  current_password_incorrect: { status: 400 },
  mfa_failed: { status: 400, oauth: 'invalid_grant' },
  mfa_code_invalid: { status: 400, oauth: 'invalid_grant' },
  reset_token_invalid: { status: 400 },
  verify_token_invalid: { status: 400 },
  email_not_verified: { status: 400, oauth: 'invalid_grant' },
  // Passkeys: a registration that does not verify (problem+json); an assertion that does not (invalid_grant).
  passkey_invalid: { status: 400 },
  mfa_token_invalid: { status: 400 },
  passkey_rejected: { status: 400, oauth: 'invalid_grant' },
  bad_request: { status: 400, oauth: 'invalid_request' },
  not_authenticated: { status: 401, challenge: null },
  invalid_token: { status: 401, challenge: 'invalid_token' },
  browser_session_missing: { status: 401 },
  insufficient_scope: { status: 403, challenge: 'insufficient_scope' },
  forbidden: { status: 403 },
  reauthentication_required: { status: 403 },
  csrf_rejected: { status: 403 },
  not_found: { status: 404 },
  method_not_allowed: { status: 405 },
  username_taken: { status: 409 },
  email_taken: { status: 409 },
  last_admin: { status: 409 },
  mfa_already_enabled: { status: 409 },
  mfa_not_enabled: { status: 409 },
  passkey_exists: { status: 409 },
  passkey_limit: { status: 409 },
  payload_too_large: { status: 413 },
  uri_too_long: { status: 414 },
  request_timeout: { status: 408 },
  headers_too_large: { status: 431 },
  unsupported_media_type: { status: 415, oauth: 'invalid_request' },
  validation_failed: { status: 422, oauth: 'invalid_request' },
  rate_limited: { status: 429 },
  store_unavailable: { status: 503 },
  busy: { status: 503 },
  shutting_down: { status: 503 },
  mail_unavailable: { status: 503 },
  internal_error: { status: 500 },
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface AuthErrorExtra {
  headers?: Record<string, string>;
  errors?: FieldError[];
  /** insufficient_scope: the scopes the route needs (the challenge names them). */
  scope?: readonly string[];
  /** Overrides the code's status (framework errors keep their own 4xx). */
  status?: number;
}

export class AuthError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly extra: AuthErrorExtra = {},
  ) {
    super(detail);
    this.name = 'AuthError';
    this.status = extra.status ?? ERROR_CODES[code].status;
  }

  get spec(): CodeSpec {
    return ERROR_CODES[this.code];
  }
}

/** 422 naming every field that failed. */
export function validationFailed(errors: FieldError[], detail = 'The request is not valid'): AuthError {
  return new AuthError('validation_failed', detail, { errors });
}

/** 429 with Retry-After in whole seconds. */
export function rateLimited(what: string, msBeforeNext: number): AuthError {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return new AuthError('rate_limited', `${what}; try again in ${seconds} s`, { headers: { 'retry-after': String(seconds) } });
}

/** The store that must answer a security check did not: 503, and nothing internal in it. */
export function storeUnavailable(): AuthError {
  return new AuthError('store_unavailable', 'The service is temporarily unavailable; try again shortly', {
    headers: { 'retry-after': '5' },
  });
}

export function invalidToken(description: string): AuthError {
  return new AuthError('invalid_token', description);
}

export function notAuthenticated(): AuthError {
  return new AuthError('not_authenticated', 'Not authenticated');
}

export function insufficientScope(needed: readonly string[]): AuthError {
  return new AuthError('insufficient_scope', `Not enough permissions: this needs the scope "${needed.join(' ')}"`, {
    scope: needed,
  });
}

export function notFound(detail = 'Not found'): AuthError {
  return new AuthError('not_found', detail);
}
