"""Web sign-ins: email + password opens a session; its random token travels in an HttpOnly
cookie and only the token's SHA-256 is stored. Each session has a CSRF token that
cookie-authenticated unsafe requests must send back in a header (checked in ``caller``)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import Connection, bindparam, delete, insert, select

from tether.accounts.keys import CALLER_COLUMNS, caller_of
from tether.accounts.roles import Caller
from tether.accounts.throttle import SignInThrottle
from tether.db.tables import sessions, users
from tether.errors import Unauthorized
from tether.security.api_keys import hash_key
from tether.security.passwords import hash_password, verify_password
from tether.timeutil import as_utc

SESSION_PREFIX = "tts_"
BAD_CREDENTIALS = "wrong email or password"


@dataclass(frozen=True)
class SignedIn:
    caller: Caller
    token: str  # for the cookie; shown nowhere else
    csrf_token: str
    expires_at: datetime


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when there is no user (or no password), so a sign-in for an
    unknown email costs what one for a known email does."""
    return hash_password(secrets.token_urlsafe(16))


def sign_in(
    conn: Connection,
    email: str,
    password: str,
    ttl: timedelta,
    throttle: SignInThrottle | None = None,
    client: str | None = None,
) -> SignedIn:
    """A new session, or ``Unauthorized`` with the same message whatever was wrong."""
    email = (email or "").strip().lower()
    if throttle:
        throttle.check(email, client)
    user = conn.execute(
        select(
            users.c.id, users.c.org_id, users.c.email, users.c.role, users.c.password_hash
        ).where(users.c.email == email)
    ).first()
    stored = user.password_hash if user is not None and user.password_hash else None
    matches = verify_password(stored or _dummy_hash(), password)
    if user is None or stored is None or not matches:
        if throttle:
            throttle.failed(email, client)
        raise Unauthorized(BAD_CREDENTIALS)
    if throttle:
        throttle.succeeded(email)
    now = datetime.now(UTC)
    conn.execute(delete(sessions).where(sessions.c.user_id == user.id, sessions.c.expires_at < now))
    token, csrf = SESSION_PREFIX + secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session_id = conn.execute(
        insert(sessions)
        .values(
            user_id=user.id,
            token_hash=hash_key(token),
            csrf_token=csrf,
            created_at=now,
            expires_at=now + ttl,
        )
        .returning(sessions.c.id)
    ).scalar_one()
    caller = Caller(user.id, user.org_id, user.email, user.role, int(session_id))
    return SignedIn(caller, token, csrf, now + ttl)


@dataclass(frozen=True)
class Session:
    caller: Caller
    csrf_token: str
    expires_at: datetime


# Built once, as the API key lookup is.
_BY_TOKEN = (
    select(sessions.c.id, sessions.c.csrf_token, sessions.c.expires_at, *CALLER_COLUMNS)
    .join(users, users.c.id == sessions.c.user_id)
    .where(sessions.c.token_hash == bindparam("token_hash"))
)


def lookup(conn: Connection, token: str) -> Session:
    """The live session behind a cookie's token, or ``Unauthorized``."""
    row = conn.execute(_BY_TOKEN, {"token_hash": hash_key(token)}).first()
    if row is None or as_utc(row.expires_at) <= datetime.now(UTC):
        raise Unauthorized("the session has ended; sign in again")
    caller = caller_of(row, row.id)
    return Session(caller, row.csrf_token, as_utc(row.expires_at))


def csrf_matches(session: Session, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(session.csrf_token, sent)


def sign_out(conn: Connection, token: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.token_hash == hash_key(token)))
