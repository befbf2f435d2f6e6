"""Errors as values: raised by handlers and domain code, turned into problem+json by the HTTP adapter.

Domain code never imports azure.functions; it raises these, and
`shared.http` maps each to an RFC 9457 problem document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.formats import UUID_RE


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass
class ProblemError(Exception):
    """Base of every error a client can cause; `status` is the HTTP status."""

    detail: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    status = 500
    title = "Internal Server Error"
    slug = "internal"

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def as_json(self) -> dict:
        body = {
            "type": f"https://errors.orders.example/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [e.as_json() for e in self.errors]
        return body


class ValidationFailed(ProblemError):
    status, title, slug = 400, "Bad Request", "validation"


class Unauthorized(ProblemError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(ProblemError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ProblemError):
    status, title, slug = 404, "Not Found", "not-found"


class MethodNotAllowed(ProblemError):
    status, title, slug = 405, "Method Not Allowed", "method-not-allowed"


class Conflict(ProblemError):
    """A business rule refused the command (stock, credit, status, uniqueness)."""

    status, title, slug = 409, "Conflict", "conflict"


class PreconditionFailed(ProblemError):
    status, title, slug = 412, "Precondition Failed", "precondition-failed"


class PayloadTooLarge(ProblemError):
    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class UnsupportedMediaType(ProblemError):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class IdempotencyKeyReused(ProblemError):
    status, title, slug = 422, "Unprocessable Content", "idempotency-key-reused"


class ServiceUnavailable(ProblemError):
    status, title, slug = 503, "Service Unavailable", "unavailable"


def hide_unless_owned(owner: str | None, owner_subject: str | None, what: str) -> None:
    """404, as if it did not exist, when the caller may only touch their own records
    (`owner` is their subject) and `what` belongs to someone else (`owner_subject`)."""
    if owner is not None and owner_subject != owner:
        raise NotFound(f"{what} does not exist.")


def known_id(value: str, what: str) -> str:
    """An id from a route, lower-cased; 404 unless it is a UUID (nothing else can name
    one of our resources)."""
    value = value.lower()
    if not UUID_RE.match(value):
        raise NotFound(f"{what} {value} does not exist.")
    return value
