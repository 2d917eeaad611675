"""Web sign-in: email + password sets an HttpOnly session cookie (and a CSRF cookie the
page's script reads and sends back as the X-CSRF-Token header); API keys need none of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from tether import accounts
from tether.accounts import sessions
from tether.api.deps import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    CallerDep,
    ConnDep,
    CsrfFailed,
    EngineDep,
    SessionCookie,
    SettingsDep,
)
from tether.api.errors import documented
from tether.api.models import Body
from tether.config import Settings
from tether.errors import Unauthorized

router = APIRouter(prefix="/session", tags=["session"], responses=documented(401, 422))


class SignIn(Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class SessionUser(BaseModel):
    id: int
    email: str
    role: Literal["admin", "member"]


class SessionOrganization(BaseModel):
    id: int
    name: str


class SessionInfo(BaseModel):
    user: SessionUser
    organization: SessionOrganization
    auth: Literal["session", "api_key"] = Field(description="how this request authenticated")
    csrf_token: str | None = Field(
        None, description="send it as X-CSRF-Token with every signed-in POST/PATCH/DELETE"
    )
    expires_at: str | None = None


def _info(conn: Any, caller: accounts.Caller, session: Any = None) -> dict[str, Any]:
    org = accounts.get_org(conn, caller.org_id)
    return {
        "user": {"id": caller.user_id, "email": caller.email, "role": caller.role},
        "organization": {"id": org["id"], "name": org["name"]},
        "auth": "session" if session is not None else "api_key",
        "csrf_token": session.csrf_token if session is not None else None,
        "expires_at": session.expires_at.isoformat() if session is not None else None,
    }


def _secure(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or (settings.public_url or "").startswith("https://")


@router.post("", response_model=SessionInfo, responses=documented(413, 429))
def sign_in(
    body: SignIn, request: Request, response: Response, conn: ConnDep, settings: SettingsDep
) -> dict[str, Any]:
    """Sign in with email and password. A wrong email and a wrong password get the same
    answer; after a few failures for one email the next attempts get 429 for a while."""
    signed = sessions.sign_in(
        conn,
        body.email,
        body.password,
        timedelta(hours=settings.session_hours),
        request.app.state.sign_in_throttle,
        request.client.host if request.client else None,
    )
    common: dict[str, Any] = {
        "max_age": int(settings.session_hours * 3600),
        "samesite": "lax",
        "secure": _secure(request, settings),
        "path": "/",
    }
    response.set_cookie(SESSION_COOKIE, signed.token, httponly=True, **common)
    response.set_cookie(CSRF_COOKIE, signed.csrf_token, httponly=False, **common)
    session = sessions.Session(signed.caller, signed.csrf_token, signed.expires_at)
    return _info(conn, signed.caller, session)


@router.get("", response_model=SessionInfo)
def who_am_i(request: Request, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    """Who sends this request (by session cookie or API key), their role and organization."""
    token = request.cookies.get(SESSION_COOKIE)
    session = sessions.lookup(conn, token) if caller.session_id is not None and token else None
    return _info(conn, caller, session)


@router.delete("", status_code=204, responses=documented(403))
def sign_out(request: Request, engine: EngineDep, token: SessionCookie) -> Response:
    """End the signed-in session (needs its X-CSRF-Token) and clear the cookies; without a
    live session it only clears them."""
    if token:
        with engine.begin() as conn:
            try:
                session = sessions.lookup(conn, token)
            except Unauthorized:
                session = None
            if session is not None:
                if not sessions.csrf_matches(session, request.headers.get(CSRF_HEADER)):
                    raise CsrfFailed(f"signing out needs the {CSRF_HEADER} header")
                sessions.sign_out(conn, token)
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE, path="/")
    return out
