// Schemas of the auth endpoints: validation, serialization and OpenAPI.
import { Type } from '@fastify/type-provider-typebox';

export const TokenRequest = Type.Object(
  {
    grant_type: Type.Optional(
      Type.String({
        description:
          '`password`, `refresh_token` or `urn:gatehouse:params:oauth:grant-type:webauthn`; `password` when omitted with username and password',
      }),
    ),
    // Bounded before anything normalises it: NFKC can make a character 18 (U+FDFA).
    username: Type.Optional(Type.String({ maxLength: 320, description: 'Username or email (at most 320 characters)' })),
    password: Type.Optional(Type.String({ format: 'password' })),
    refresh_token: Type.Optional(Type.String()),
    assertion: Type.Optional(Type.String({ maxLength: 16384, description: 'webauthn grants: the AuthenticationResponseJSON, as a JSON string' })),
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
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'User' },
);
