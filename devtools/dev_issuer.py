"""The development token issuer: signs access tokens for the local stack, as Entra ID would.

A key pair is generated once into `<state dir>/dev-issuer/` (the private key never
leaves it); its public half is published as a JWKS document that the dev host
serves, and the app checks tokens against it through its ordinary settings
(AUTH_ISSUER, AUTH_AUDIENCE, AUTH_JWKS_URI) — the same code path as in Azure.
There is no switch that turns authentication off.

    python -m devtools.dev_issuer token --roles "Orders.Admin" --sub ops   # `make token`
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://dev-issuer.orders.local/v2.0"
AUDIENCE = "api://orders-local"
JWKS_ROUTE = "/.dev-issuer/jwks.json"
DEFAULT_LIFETIME = 3600
REPO_ROOT = Path(__file__).resolve().parent.parent


def folder(state_dir: Path) -> Path:
    return Path(state_dir) / "dev-issuer"


def ensure_key(state_dir: Path) -> Path:
    """Create the signing key and its JWKS document once; returns the JWKS path."""
    home = folder(state_dir)
    key_path, jwks_path = home / "key.pem", home / "jwks.json"
    if key_path.exists() and jwks_path.exists():
        return jwks_path
    home.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    kid = uuid.uuid4().hex
    jwks = {"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}
    jwks_path.write_text(json.dumps(jwks, indent=2) + "\n")
    return jwks_path


def settings(state_dir: Path, host_base_url: str) -> dict[str, str]:
    """The app settings that make it accept this issuer's tokens."""
    ensure_key(state_dir)
    return {
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        "AUTH_JWKS_URI": host_base_url.rstrip("/") + JWKS_ROUTE,
    }


def mint(
    state_dir: Path,
    roles: list[str],
    subject: str = "dev",
    lifetime: int = DEFAULT_LIFETIME,
    **claims: Any,
) -> str:
    """A signed access token with Entra ID's claim names (`oid`, `sub`, `roles`, ...);
    `claims` override any of them (tests use that for expired or foreign tokens)."""
    jwks_path = ensure_key(state_dir)
    kid = json.loads(jwks_path.read_text())["keys"][0]["kid"]
    key = (folder(state_dir) / "key.pem").read_bytes()
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "oid": subject,
        "roles": roles,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.dev_issuer", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="print an access token for the local stack")
    token.add_argument(
        "--roles", default="Orders.Admin", help="space-separated app roles"
    )
    token.add_argument("--sub", default="dev", help="the token's subject (oid and sub)")
    token.add_argument("--lifetime", type=int, default=DEFAULT_LIFETIME, help="seconds")
    token.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".local")
    args = parser.parse_args(argv)
    print(mint(args.state_dir, args.roles.split(), args.sub, args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
