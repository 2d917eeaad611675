"""Dependencies shared by routes: the database connection and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine
from starlette.exceptions import HTTPException

from tether import accounts
from tether.accounts import Caller
from tether.config import Settings
from tether.errors import Invalid, TetherError, Unauthorized
from tether.jobs.queue import JobQueue

EXPECTED = (TetherError, HTTPException, RequestValidationError)
_bearer = HTTPBearer(auto_error=False, description="An API key: `tether keys create EMAIL`.")


def engine(request: Request) -> Engine:
    return request.app.state.engine


def settings(request: Request) -> Settings:
    return request.app.state.settings


def queue(request: Request) -> JobQueue:
    return request.app.state.queue


def connection(request: Request) -> Iterator[Connection]:
    with request.app.state.engine.connect() as conn:
        try:
            with conn.begin():
                yield conn
        except EXPECTED:
            raise
        except BaseException:
            # An error in the middle of reading a result leaves its cursor open; on SQLite
            # that pins the connection's snapshot even after rollback, so a pooled connection
            # would serve stale reads (a new API key refused, deleted rows still there).
            conn.invalidate()
            raise


def caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    with request.app.state.engine.begin() as conn:
        found = accounts.authenticate(conn, credentials.credentials)
    if "\x00" in request.scope["path"] or any(
        "\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()
    ):
        raise Invalid("the path and query must not contain NUL (%00) characters")
    return found


EngineDep = Annotated[Engine, Depends(engine)]
SettingsDep = Annotated[Settings, Depends(settings)]
QueueDep = Annotated[JobQueue, Depends(queue)]
# scope="function": the transaction commits before the response leaves, so a client that
# sees an answer and asks again reads what it wrote.
ConnDep = Annotated[Connection, Depends(connection, scope="function")]
CallerDep = Annotated[Caller, Depends(caller)]
