"""Operator tokens for local use, and their check the way the API Gateway JWT authorizer does it
(signature, expiry, issuer, audience), against a development key kept under .local/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jobs_local.devdb import ROOT

KEY_FILE = ROOT / ".local" / "jwt-dev-key.pem"
ISSUER = "http://127.0.0.1/local-dev"
AUDIENCE = "iot-jobs"
LIFETIME_S = 12 * 3600


def _private_key(path: Path = KEY_FILE) -> rsa.RSAPrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


def mint(tenant_id: str | None, sub: str = "local-operator", *, tenant_claim: str = "tenant_id", **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + LIFETIME_S}
    if tenant_id is not None:
        payload[tenant_claim] = tenant_id
    payload.update(claims)
    return jwt.encode(payload, _private_key(), algorithm="RS256", headers={"kid": "local-dev"})


def verify(token: str) -> dict[str, str]:
    """The claims as API Gateway hands them to the function, or jwt.InvalidTokenError."""
    claims = jwt.decode(
        token,
        _private_key().public_key(),
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iss", "aud", "sub"]},
    )
    return as_api_gateway_claims(claims)


def as_api_gateway_claims(claims: dict[str, Any]) -> dict[str, str]:
    """An HTTP API's JWT authorizer passes every claim as a string: numbers in digits, booleans as
    true/false, arrays as [a b], objects as map[k:v] (Go's formatting); a null claim is left out."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + " ".join(text(item) for item in value) + "]"
        if isinstance(value, dict):
            return "map[" + " ".join(f"{key}:{text(item)}" for key, item in value.items()) + "]"
        return value if isinstance(value, str) else str(value)

    return {name: text(value) for name, value in claims.items() if value is not None}
