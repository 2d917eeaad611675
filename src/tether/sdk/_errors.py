"""Exceptions the SDK raises; each server error carries the server's code and message.

TetherAPIError         any error answer from the server (status, code, message, details)
├── AuthenticationError   401: missing, wrong or revoked API key
├── ForbiddenError        403: the key's user may not do this (e.g. a member, not an admin)
├── NotFoundError         404
├── ConflictError         409
├── TooLargeError         413
└── InvalidError          422
JobTimeoutError        ``Job.wait_till_done`` ran out of time (the job goes on)
"""

from __future__ import annotations

from typing import Any

import httpx


class TetherAPIError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class AuthenticationError(TetherAPIError):
    pass


class ForbiddenError(TetherAPIError):
    pass


class NotFoundError(TetherAPIError):
    pass


class ConflictError(TetherAPIError):
    pass


class TooLargeError(TetherAPIError):
    pass


class InvalidError(TetherAPIError):
    pass


class JobTimeoutError(TimeoutError):
    pass


_BY_STATUS: dict[int, type[TetherAPIError]] = {
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    422: InvalidError,
}


def raise_for_answer(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = "http_error", response.text[:500] or response.reason_phrase, None
    cls = _BY_STATUS.get(response.status_code, TetherAPIError)
    raise cls(response.status_code, code, message, details)
