"""Dependencies shared by routes: the database connection and the authenticated caller
(by API key, or by the session cookie of a web sign-in)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine
from starlette.exceptions import HTTPException

from tether import accounts
from tether.accounts import Caller, sessions
from tether.config import Settings
from tether.errors import Forbidden, Invalid, TetherError, Unauthorized
from tether.jobs import service as jobs_service
from tether.jobs.queue import JobQueue

EXPECTED = (TetherError, HTTPException, RequestValidationError)
SESSION_COOKIE = "tether_session"
CSRF_COOKIE = "tether_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_bearer = HTTPBearer(
    auto_error=False, description="An API key: `tether keys create EMAIL` or POST /api-keys."
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="A web sign-in (POST /session). Unsafe methods must also send the "
    f"session's CSRF token in the {CSRF_HEADER} header.",
)


class CsrfFailed(Forbidden):
    code = "csrf_failed"


# These three are ``async`` only so FastAPI calls them on the event loop: a plain ``def``
# dependency costs a thread hop per request (~0.1 ms on a busy machine).
async def engine(request: Request) -> Engine:
    return request.app.state.engine


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def queue(request: Request) -> JobQueue:
    return request.app.state.queue


def connection(request: Request) -> Iterator[Connection]:
    """The request's transaction; jobs a service made in it (``jobs.service.
    enqueue_after_commit``) are queued once it has committed, and forgotten if it did not."""
    with request.app.state.engine.connect() as conn:
        jobs_service.take_after_commit(conn)  # nothing a failed request left
        try:
            with conn.begin():
                yield conn
        except EXPECTED:
            jobs_service.take_after_commit(conn)
            raise
        except BaseException:
            jobs_service.take_after_commit(conn)
            # An error in the middle of reading a result leaves its cursor open; on SQLite
            # that pins the connection's snapshot even after rollback, so a pooled connection
            # would serve stale reads (a new API key refused, deleted rows still there).
            conn.invalidate()
            raise
        for job_id in jobs_service.take_after_commit(conn):
            request.app.state.queue.enqueue(job_id)


def _authenticate(
    request: Request,
    conn: Connection,
    credentials: HTTPAuthorizationCredentials | None,
    session_token: str | None,
) -> Caller:
    """An ``Authorization: Bearer`` API key wins; else the session cookie, whose unsafe
    requests must carry the session's CSRF token (a cross-site form cannot set a header).
    Only reads ``conn``; a key's use is recorded (once a ``LAST_USED_RESOLUTION``) in a
    short transaction of its own, so a read-only request never holds a write lock and a
    failed one still counts as a use."""
    if credentials is not None:  # HTTPBearer hands over Bearer credentials only
        key = accounts.find_key(conn, credentials.credentials)
        if key.stale:
            with request.app.state.engine.begin() as own:
                accounts.record_use(own, key.key_id)
        found = key.caller
    elif session_token:
        session = sessions.lookup(conn, session_token)
        if request.method not in SAFE_METHODS and not sessions.csrf_matches(
            session, request.headers.get(CSRF_HEADER)
        ):
            raise CsrfFailed(
                f"a signed-in request that changes something needs the {CSRF_HEADER} header "
                "(the csrf_token of POST or GET /session)"
            )
        found = session.caller
    else:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    if "\x00" in request.scope["path"] or any(
        "\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()
    ):
        raise Invalid("the path and query must not contain NUL (%00) characters")
    return found


def caller(
    request: Request,
    conn: ConnDep,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    session_token: str | None = Depends(_cookie),
) -> Caller:
    """The authenticated caller, looked up on the request's own connection (``ConnDep``):
    one pool checkout and one transaction a request, not two (on PostgreSQL each costs a
    ping and a BEGIN/COMMIT round trip)."""
    return _authenticate(request, conn, credentials, session_token)


def caller_alone(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    session_token: str | None = Depends(_cookie),
) -> Caller:
    """``caller`` in a short transaction of its own, for routes that hold no connection
    while they run (bodies streamed in or out, work that reads no database)."""
    with request.app.state.engine.connect() as conn:
        return _authenticate(request, conn, credentials, session_token)


def optional_caller(
    request: Request,
    conn: ConnDep,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    session_token: str | None = Depends(_cookie),
) -> Caller | None:
    """``caller`` when the request carries credentials (wrong ones are still refused); None
    when it carries none, for routes that also take another proof (an asset token)."""
    if credentials is None and not session_token:
        return None
    return _authenticate(request, conn, credentials, session_token)


EngineDep = Annotated[Engine, Depends(engine)]
SettingsDep = Annotated[Settings, Depends(settings)]
QueueDep = Annotated[JobQueue, Depends(queue)]
# scope="function": the transaction commits before the response leaves, so a client that
# sees an answer and asks again reads what it wrote.
ConnDep = Annotated[Connection, Depends(connection, scope="function")]
CallerDep = Annotated[Caller, Depends(caller)]
CallerAloneDep = Annotated[Caller, Depends(caller_alone)]
OptionalCallerDep = Annotated[Caller | None, Depends(optional_caller)]
SessionCookie = Annotated[str | None, Depends(_cookie)]
