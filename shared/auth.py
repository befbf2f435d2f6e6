"""Who is calling, and may they: Microsoft Entra ID bearer tokens and the API's app roles.

Every route but the anonymous ones needs `Authorization: Bearer <JWT>`: an access
token for the API's app registration, checked here (signature against the
issuer's JWKS, issuer, audience, expiry, not-before) with PyJWT. Signing keys are
cached and fetched again when a token names a key id the cache does not hold, so
the issuer can rotate keys without a restart. Locally the same code checks tokens
of the development issuer (devtools/dev_issuer.py) through the same settings.

Roles come from the token's `roles` claim; a token may hold several (the union
applies). `Orders.Customer` is self-service: a route it reaches is limited to the
caller's own customer record and orders (ownership, checked by the handlers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import jwt

from shared import config
from shared.errors import Forbidden, ServiceUnavailable, Unauthorized

ADMIN = "Orders.Admin"
CATALOG = "Orders.Catalog"
FULFILLMENT = "Orders.Fulfillment"
SUPPORT = "Orders.Support"
CUSTOMER = "Orders.Customer"
ROLES = (ADMIN, CATALOG, FULFILLMENT, SUPPORT, CUSTOMER)

# Asymmetric algorithms only: a token "signed" with the public key as an HMAC secret, or
# with `none`, is refused before any key is looked at.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256"]
LEEWAY_SECONDS = 60  # clock skew between the issuer and this app
JWKS_TIMEOUT_SECONDS = 5
JWKS_CACHE_SECONDS = 3600


@dataclass(frozen=True)
class Principal:
    """The caller: the token's subject (`oid`, else `sub`) and app roles."""

    subject: str
    roles: frozenset[str]

    def granted(self, allowed: Iterable[str]) -> frozenset[str]:
        return self.roles & frozenset(allowed)

    def owner_scope(self, allowed: Iterable[str]) -> str | None:
        """The subject whose records alone this route may touch, or None for any record:
        a caller reaching the route only as `Orders.Customer` is confined to their own."""
        granted = self.granted(allowed)
        return self.subject if granted == {CUSTOMER} else None

    def actor(self) -> dict[str, Any]:
        """What events record of who did it."""
        return {"subject": self.subject, "roles": sorted(self.roles)}


def _challenge(error: str | None = None, description: str | None = None) -> str:
    parts = ['Bearer realm="orders"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    return ", ".join(parts)


def unauthorized(detail: str, *, token_sent: bool) -> Unauthorized:
    """401 with the RFC 6750 challenge (`invalid_token` when a token was sent)."""
    challenge = (
        _challenge("invalid_token", detail.replace('"', "'"))
        if token_sent
        else _challenge()
    )
    return Unauthorized(detail, headers={"WWW-Authenticate": challenge})


class TokenValidator:
    """Validates access tokens of one issuer and audience against the issuer's JWKS."""

    def __init__(self, issuer: str, audiences: list[str], jwks_uri: str) -> None:
        self.issuer = issuer
        self.audiences = audiences
        # The key set is cached for JWKS_CACHE_SECONDS and fetched again when a token
        # names a key id it lacks; no per-key cache, so a key the issuer withdrew stops
        # being trusted with the next fetch.
        self._jwks = jwt.PyJWKClient(
            jwks_uri,
            cache_keys=False,
            lifespan=JWKS_CACHE_SECONDS,
            timeout=JWKS_TIMEOUT_SECONDS,
        )

    def principal(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise jwt.InvalidAlgorithmError(f"algorithm {header.get('alg')!r}")
            # The header read above names the key (get_signing_key_from_jwt would decode
            # the whole token once more for it).
            kid = header.get("kid")
            if not isinstance(kid, str):
                raise jwt.PyJWKClientError("the token names no key id")
            key = self._jwks.get_signing_key(kid)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.audiences,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise ServiceUnavailable(
                "The token issuer's signing keys cannot be fetched right now.",
                headers={"Retry-After": "5"},
            ) from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise unauthorized(_reason(exc), token_sent=True) from None
        subject = claims.get("oid") or claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise unauthorized("The token names no subject.", token_sent=True)
        roles = claims.get("roles") or []
        if not isinstance(roles, list):
            raise unauthorized(
                "The token's roles claim is not a list.", token_sent=True
            )
        return Principal(subject, frozenset(r for r in roles if isinstance(r, str)))


def _reason(exc: Exception) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "The token has expired."
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "The token is not valid yet."
    if isinstance(exc, jwt.InvalidAudienceError):
        return "The token is not for this API (audience)."
    if isinstance(exc, jwt.InvalidIssuerError):
        return "The token is from another issuer."
    if isinstance(exc, jwt.PyJWKClientError):
        return "The token is signed with an unknown key."
    return "The token is not valid."


@cache
def validator() -> TokenValidator:
    issuer = config.get("AUTH_ISSUER")
    audiences = [a.strip() for a in (config.get("AUTH_AUDIENCE") or "").split(",")]
    jwks_uri = config.get("AUTH_JWKS_URI")
    if not issuer or not jwks_uri or not any(audiences):
        raise RuntimeError(
            "authentication is not configured: set AUTH_ISSUER, AUTH_AUDIENCE and AUTH_JWKS_URI"
        )
    return TokenValidator(issuer, [a for a in audiences if a], jwks_uri)


def authenticate(headers: Mapping[str, str]) -> Principal:
    """The caller of a request (headers with lower-case names), or 401."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if not value:
        raise unauthorized("A bearer token is required.", token_sent=False)
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized(
            "Send the token as 'Authorization: Bearer <token>'.", token_sent=True
        )
    return validator().principal(token.strip())


def authorize(principal: Principal, allowed: Iterable[str]) -> None:
    """403 unless one of the caller's roles is allowed on the route."""
    if not principal.granted(allowed):
        raise Forbidden(
            f"This operation needs one of the roles {', '.join(sorted(allowed))}."
        )
