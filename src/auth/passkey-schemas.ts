// The WebAuthn JSON forms Gatehouse reads and writes (W3C WebAuthn L3
// §5.1.8-§5.1.10, as @simplewebauthn spells them), bounded: an id is at most
// 1023 bytes (§5.8.3 credential ids), client data and authenticator data a
// few KiB. Validation, serialization and OpenAPI.
import { Type } from '@fastify/type-provider-typebox';

const b64url = (maxLength: number, description?: string) =>
  Type.String({ pattern: '^[A-Za-z0-9_-]*$', minLength: 1, maxLength, ...(description ? { description } : {}) });
const CREDENTIAL_ID = b64url(1366, 'base64url credential id');
const Transport = Type.String({ maxLength: 32 });

export const RegistrationResponseJSON = Type.Object(
  {
    id: CREDENTIAL_ID,
    rawId: CREDENTIAL_ID,
    type: Type.Literal('public-key'),
    response: Type.Object(
      {
        clientDataJSON: b64url(8192),
        attestationObject: b64url(65536),
        authenticatorData: Type.Optional(b64url(65536)),
        transports: Type.Optional(Type.Array(Transport, { maxItems: 8 })),
        publicKeyAlgorithm: Type.Optional(Type.Integer()),
        publicKey: Type.Optional(b64url(8192)),
      },
      { additionalProperties: false },
    ),
    authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
    clientExtensionResults: Type.Object({}, { additionalProperties: true }),
  },
  { additionalProperties: false, description: 'RegistrationResponseJSON: what navigator.credentials.create() answered, as JSON' },
);

export const AuthenticationResponseJSON = Type.Object(
  {
    id: CREDENTIAL_ID,
    rawId: CREDENTIAL_ID,
    type: Type.Literal('public-key'),
    response: Type.Object(
      {
        clientDataJSON: b64url(8192),
        authenticatorData: b64url(8192),
        signature: b64url(1024),
        userHandle: Type.Optional(b64url(128)),
      },
      { additionalProperties: false },
    ),
    authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
    clientExtensionResults: Type.Object({}, { additionalProperties: true }),
  },
  { additionalProperties: false },
);

const Descriptor = Type.Object({
  id: Type.String(),
  type: Type.Literal('public-key'),
  transports: Type.Optional(Type.Array(Type.String())),
});

/** PublicKeyCredentialCreationOptionsJSON (for navigator.credentials.create, e.g. via @simplewebauthn/browser). */
export const CreationOptionsJSON = Type.Object(
  {
    challenge: Type.String(),
    rp: Type.Object({ name: Type.String(), id: Type.String() }),
    user: Type.Object({ id: Type.String({ description: 'An opaque handle (base64url), never the email' }), name: Type.String(), displayName: Type.String() }),
    pubKeyCredParams: Type.Array(Type.Object({ alg: Type.Integer(), type: Type.Literal('public-key') })),
    timeout: Type.Optional(Type.Integer()),
    attestation: Type.Optional(Type.String()),
    excludeCredentials: Type.Optional(Type.Array(Descriptor)),
    authenticatorSelection: Type.Optional(Type.Object({}, { additionalProperties: true })),
    extensions: Type.Optional(Type.Object({}, { additionalProperties: true })),
    hints: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: true },
);

/** PublicKeyCredentialRequestOptionsJSON (for navigator.credentials.get). */
export const RequestOptionsJSON = Type.Object(
  {
    challenge: Type.String(),
    rpId: Type.String(),
    timeout: Type.Integer(),
    userVerification: Type.Literal('required'),
    allowCredentials: Type.Optional(Type.Array(Descriptor, { description: 'Only for a second factor: the passkeys of the user who gave the password' })),
  },
  { additionalProperties: true },
);

export const PasskeyName = Type.String({ minLength: 1, maxLength: 64, description: '1–64 characters, no control characters' });

export const Passkey = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
