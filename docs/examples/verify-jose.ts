import { createRemoteJWKSet, jwtVerify } from 'jose';

/** issuer: Gatehouse's JWT_ISSUER (by default its PUBLIC_URL, e.g. https://auth.example.com). */
export function gatehouseVerifier(issuer: string, audience = 'gatehouse') {
  // Fetched once, cached, fetched again when a token names a kid it has not seen (a rotation).
  const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
  return async (token: string) => {
    const { payload } = await jwtVerify(token, jwks, {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms: ['EdDSA', 'ES256', 'RS256'],
    });
    return payload; // sub: the user's id; scope: "me posts:write"; username
  };
}
