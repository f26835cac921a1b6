// Errors in the contract's two formats: RFC 9457 problem details everywhere,
// RFC 6749 §5.2 JSON on the OAuth endpoints.
import { STATUS_CODES } from 'node:http';

export interface FieldError {
  path: string;
  message: string;
}

/** Throw from any route or hook; the error handler renders it as problem+json. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly extra: { headers?: Record<string, string>; errors?: FieldError[]; title?: string } = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
  }
}

export function problemBody(status: number, detail: string, errors?: FieldError[], title?: string) {
  return {
    type: 'about:blank',
    title: title ?? STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    ...(errors ? { errors } : {}),
  };
}

export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_grant'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_client'
  | 'unsupported_token_type';

/** An RFC 6749 §5.2 error from the token or revocation endpoint. */
export class OAuthError extends Error {
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly status = 400,
  ) {
    super(description);
    this.name = 'OAuthError';
  }
}
