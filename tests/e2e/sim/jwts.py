"""Signing keys and JWT helpers shared by the simulated issuers."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.public_key))
        data.update({"kid": self.kid, "use": "sig", "kty": "RSA", "x5t": self.kid})
        return data


def new_signing_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Entra's kid and x5t are the same base64url string; any unique value will do here.
    kid = base64.urlsafe_b64encode(secrets.token_bytes(15)).decode().rstrip("=")
    return SigningKey(kid, key)


def sign(key: SigningKey, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    all_headers = {"kid": key.kid, "x5t": key.kid, "typ": "JWT"}
    all_headers.update(headers or {})
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers=all_headers)


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims of something shaped like a JWT, or None."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return header, claims


def verify(
    token: str, public_key: Any, algorithms: tuple[str, ...] = ("RS256",)
) -> dict[str, Any] | None:
    """Claims if the signature holds; expiry and audience are the caller's business."""
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=list(algorithms),
            options={
                "verify_exp": False,
                "verify_aud": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def now() -> int:
    return int(time.time())


def new_guid() -> str:
    return str(uuid.uuid4())


def fingerprint(secret: str) -> str:
    """What the log keeps instead of a secret: enough to tell two credentials apart."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
