// Schemas of the auth endpoints: validation, serialization and OpenAPI.
import { Type } from '@fastify/type-provider-typebox';

export const TokenRequest = Type.Object(
  {
    grant_type: Type.Optional(
      Type.String({
        description:
          '`password` or `refresh_token` (`password` when omitted with username and password); after a 403 `mfa_required`, ' +
          '`urn:gatehouse:params:oauth:grant-type:mfa-otp` (mfa_token, otp) or `urn:gatehouse:params:oauth:grant-type:mfa-recovery-code` (mfa_token, recovery_code) or ' +
          '`urn:gatehouse:params:oauth:grant-type:mfa-webauthn` (mfa_token, assertion); a passkey alone: `urn:gatehouse:params:oauth:grant-type:webauthn` (assertion)',
      }),
    ),
    // Bounded before anything normalises it: NFKC can make a character 18 (U+FDFA).
    username: Type.Optional(Type.String({ maxLength: 320, description: 'Username or email (at most 320 characters)' })),
    password: Type.Optional(Type.String({ format: 'password' })),
    refresh_token: Type.Optional(Type.String()),
    assertion: Type.Optional(
      Type.String({ maxLength: 16384, description: 'webauthn and mfa-webauthn grants: the AuthenticationResponseJSON, as a JSON string' }),
    ),
    mfa_token: Type.Optional(Type.String({ description: 'The mfa_token of a 403 mfa_required answer (second-factor grants)' })),
    otp: Type.Optional(Type.String({ description: 'A current TOTP code (mfa-otp grant)' })),
    recovery_code: Type.Optional(Type.String({ description: 'An unused recovery code (mfa-recovery-code grant)' })),
    scope: Type.Optional(Type.String({ description: 'Space-separated scopes; omit for every scope your role allows' })),
    client_id: Type.Optional(Type.String()),
    client_secret: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export const TokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer(),
  refresh_token: Type.String(),
  scope: Type.String(),
});

export const OAuthErrorBody = Type.Object({
  error: Type.String(),
  error_description: Type.String(),
});

/** A right password for an account with a second factor: the second step's ticket (RFC 6749 §5.2-style body). */
export const MfaRequiredBody = Type.Object(
  {
    error: Type.Literal('mfa_required'),
    error_description: Type.String(),
    mfa_token: Type.String({ description: 'Send it with a second-factor grant within 5 minutes; 5 wrong codes kill it; a success spends it' }),
    mfa_methods: Type.Array(Type.String(), { description: 'The second factors this account can use: totp, recovery_code, webauthn (a passkey: options from POST /auth/passkey/options with the mfa_token)' }),
  },
  { description: 'The password was right; a second factor is required' },
);

export const RevokeRequest = Type.Object(
  {
    token: Type.Optional(Type.String()),
    token_type_hint: Type.Optional(Type.String({ description: '`refresh_token` or `access_token` (a hint only)' })),
  },
  { additionalProperties: true },
);

export const RegisterRequest = Type.Object({
  username: Type.String({ maxLength: 256, description: '3–32 of a-z 0-9 _ . - after NFKC normalisation and lower-casing' }),
  email: Type.String({ maxLength: 320, description: 'A valid address; unique case-insensitively' }),
  password: Type.String({ maxLength: 4096, format: 'password' }),
  full_name: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
});

export const LogoutQuery = Type.Object({
  scope: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('others'), Type.Literal('global')], { default: 'local' })),
});

export const Jwks = Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) });

/** RFC 9457 problem details, with `code` (the stable reason) and `errors` (every invalid field). */
export const ProblemBody = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: Type.String({ description: 'A stable machine-readable reason (RFC 9457 extension member)' }),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
});

/** The same, as a shared schema of the service (`Type.Ref('Problem')`). */
export const Problem = Type.Object(ProblemBody.properties, { $id: 'Problem' });

export const User = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    username: Type.String(),
    email: Type.String(),
    full_name: Type.Union([Type.String(), Type.Null()]),
    role: Type.Union([Type.Literal('user'), Type.Literal('admin')]),
    disabled: Type.Boolean(),
    mfa: Type.Boolean({ description: 'A second factor (TOTP) is required at sign-in' }),
    email_verified: Type.Boolean({ description: 'The owner proved the address (a link mailed to it was followed)' }),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'User' },
);
