"""Mint an RS256 JWT for dotgit with PyJWT (pip install "pyjwt[crypto]").
Needs: PRIVATE_KEY (PEM file), KID, ISS, SUB, AUD; optional SCOPE (default "repo:read")."""
import os
import time

import jwt

now = int(time.time())
claims = {
    "iss": os.environ["ISS"],
    "sub": os.environ["SUB"],
    "aud": os.environ["AUD"],
    "iat": now,
    "exp": now + 600,
    "scope": os.environ.get("SCOPE", "repo:read"),
}
with open(os.environ["PRIVATE_KEY"], "rb") as f:
    private_key = f.read()
print(jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": os.environ["KID"]}))
