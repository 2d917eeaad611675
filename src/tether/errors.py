"""tether's error tree. Services raise these; the API maps each to one HTTP status.

TetherError
├── Invalid        (422) the request is understood but a value is wrong
├── Unauthorized   (401) no valid API key
├── Forbidden      (403) valid key or session, but the caller's role may not do this
├── NotFound       (404) absent, or belongs to another organization
├── Conflict       (409) clashes with existing state (a taken name; a taken global key is
│                        code global_key_exists)
├── TooLarge       (413) body over the configured limit
└── RateLimited    (429) too many attempts (failed sign-ins); details.retry_after seconds
"""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:  # a more precise code than the class's, e.g. global_key_exists
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Invalid(TetherError):
    status = 422
    code = "invalid"


class Unauthorized(TetherError):
    status = 401
    code = "unauthorized"


class Forbidden(TetherError):
    status = 403
    code = "forbidden"


class NotFound(TetherError):
    status = 404
    code = "not_found"


class Conflict(TetherError):
    status = 409
    code = "conflict"


class TooLarge(TetherError):
    status = 413
    code = "too_large"


class RateLimited(TetherError):
    status = 429
    code = "rate_limited"
