import os

import jwt

GATEHOUSE = os.environ.get("GATEHOUSE_URL", "https://auth.example.com")  # its JWT_ISSUER (default: PUBLIC_URL)
AUDIENCE = "gatehouse"  # its JWT_AUDIENCE

# Caches the keys; fetches the set again when a token names a kid it has not seen (a rotation).
jwks_client = jwt.PyJWKClient(f"{GATEHOUSE}/.well-known/jwks.json")


def verify_access_token(token: str) -> dict:
    """EdDSA, ES256 or RS256: the key the token's kid names, from the JWK set."""
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["EdDSA", "ES256", "RS256"],
        audience=AUDIENCE,
        issuer=GATEHOUSE,
    )


def verify_hs256_access_token(token: str, secret_key: str) -> dict:
    """HS256: the shared SECRET_KEY (never published in the JWK set)."""
    return jwt.decode(token, secret_key, algorithms=["HS256"], audience=AUDIENCE, issuer=GATEHOUSE)
