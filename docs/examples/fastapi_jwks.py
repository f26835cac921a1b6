import os

import jwt
from fastapi import Depends, FastAPI, HTTPException, Security, status
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

GATEHOUSE = os.environ.get("GATEHOUSE_URL", "https://auth.example.com")  # its JWT_ISSUER (default: PUBLIC_URL)
jwks_client = jwt.PyJWKClient(f"{GATEHOUSE}/.well-known/jwks.json")
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{GATEHOUSE}/auth/token")


def gatehouse_claims(security_scopes: SecurityScopes, token: str = Depends(oauth2_scheme)) -> dict:
    """The token's claims, verified against Gatehouse's JWK set; 401 or 403 otherwise."""
    try:
        key = jwks_client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["EdDSA", "ES256", "RS256"], audience="gatehouse", issuer=GATEHOUSE)
    except jwt.PyJWTError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Could not validate credentials", {"WWW-Authenticate": "Bearer"})
    granted = claims["scope"].split()
    if any(scope not in granted for scope in security_scopes.scopes):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Not enough permissions", {"WWW-Authenticate": "Bearer"})
    return claims


app = FastAPI()


@app.get("/whoami")
def whoami(claims: dict = Security(gatehouse_claims, scopes=["me"])):
    return {"user_id": claims["sub"], "username": claims["username"], "scope": claims["scope"]}
