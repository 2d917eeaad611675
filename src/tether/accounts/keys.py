"""API keys: a user manages their own; an admin also the organization's. The plain key is
returned once, at creation, and never stored (``security.api_keys``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from tether.accounts.roles import Caller, require_admin
from tether.db.tables import api_keys, users
from tether.errors import Invalid, NotFound, Unauthorized
from tether.security.api_keys import generate_key, hash_key
from tether.timeutil import as_utc, iso

LAST_USED_RESOLUTION = timedelta(minutes=1)
COLUMNS = (
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.hint,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)


def _insert(conn: Connection, user_id: int, org_id: int, name: str) -> tuple[int, str]:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise Invalid("a key name needs 1 to 200 characters")
    key = generate_key()
    key_id = conn.execute(
        insert(api_keys)
        .values(
            user_id=user_id,
            org_id=org_id,
            name=name,
            key_hash=hash_key(key),
            hint=key[:8],
            created_at=datetime.now(UTC),
        )
        .returning(api_keys.c.id)
    ).scalar_one()
    return int(key_id), key


def create_api_key(conn: Connection, email: str, name: str = "default") -> str:
    """A new key for the user (local operator: the CLI); the plain key, once."""
    user = conn.execute(
        select(users.c.id, users.c.org_id).where(users.c.email == email.strip().lower())
    ).first()
    if user is None:
        raise NotFound(f"no user {email}")
    return _insert(conn, user.id, user.org_id, name)[1]


def list_api_keys(conn: Connection, email: str) -> list[dict[str, object]]:
    """The user's keys (local operator: the CLI)."""
    rows = conn.execute(
        select(*COLUMNS)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(users.c.email == email.strip().lower())
        .order_by(api_keys.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def revoke_api_key(conn: Connection, key_id: int) -> None:
    """Revoke any key by id (local operator: the CLI)."""
    done = conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if not done.rowcount:
        raise NotFound(f"no active API key {key_id}")


def _public(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "hint": row.hint,
        "user_id": row.user_id,
        "email": row.email,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "revoked_at": iso(row.revoked_at),
    }


def _org_keys(org_id: int) -> Any:
    return (
        select(*COLUMNS, api_keys.c.user_id, users.c.email)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.org_id == org_id)
        .order_by(api_keys.c.id)
    )


def list_keys(conn: Connection, caller: Caller, all_users: bool = False) -> list[dict[str, Any]]:
    """The caller's own keys; with ``all_users`` (admins) every key of the organization."""
    query = _org_keys(caller.org_id)
    if all_users:
        require_admin(caller.role, "list the API keys of other users")
    else:
        query = query.where(api_keys.c.user_id == caller.user_id)
    return [_public(r) for r in conn.execute(query)]


def create_key(
    conn: Connection, caller: Caller, name: str = "default", user_id: int | None = None
) -> dict[str, Any]:
    """A new key for the caller, or (admins) for another user of the organization. The
    result holds the plain ``key``: it is shown this once."""
    owner = caller.user_id if user_id is None else user_id
    if owner != caller.user_id:
        require_admin(caller.role, "create API keys for other users")
        found = conn.execute(
            select(users.c.id).where(users.c.id == owner, users.c.org_id == caller.org_id)
        ).first()
        if found is None:
            raise NotFound(f"no user {owner}")
    key_id, key = _insert(conn, owner, caller.org_id, name)
    row = conn.execute(_org_keys(caller.org_id).where(api_keys.c.id == key_id)).one()
    return {**_public(row), "key": key}


def revoke_key(conn: Connection, caller: Caller, key_id: int) -> None:
    """Revoke one of the caller's keys, or (admins) any key of the organization."""
    row = conn.execute(
        select(api_keys.c.user_id, api_keys.c.revoked_at).where(
            api_keys.c.id == key_id, api_keys.c.org_id == caller.org_id
        )
    ).first()
    if row is None or row.revoked_at is not None:
        raise NotFound(f"no active API key {key_id}")
    if row.user_id != caller.user_id:
        require_admin(caller.role, "revoke the API keys of other users")
    conn.execute(
        update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=datetime.now(UTC))
    )


@dataclass(frozen=True, slots=True)
class KeyUse:
    """A live API key found by ``find_key``: whose it is, and whether this use should be
    recorded (``last_used_at`` is kept to ``LAST_USED_RESOLUTION``, not written per request)."""

    caller: Caller
    key_id: int
    stale: bool


# The user's columns a ``Caller`` is made of (``caller_of``), for the key and session lookups.
CALLER_COLUMNS = (users.c.id.label("user_id"), users.c.org_id, users.c.email, users.c.role)

# Built once: composing a statement costs more than the lookup itself (~70 us).
_BY_HASH = (
    select(api_keys.c.id, api_keys.c.last_used_at, *CALLER_COLUMNS)
    .join(users, users.c.id == api_keys.c.user_id)
    .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
)


def find_key(conn: Connection, key: str) -> KeyUse:
    """The live key ``key`` (only reads), or ``Unauthorized``."""
    row = conn.execute(_BY_HASH, {"key_hash": hash_key(key)}).first()
    if row is None:
        raise Unauthorized("invalid or revoked API key")
    stale = (
        row.last_used_at is None
        or datetime.now(UTC) - as_utc(row.last_used_at) > LAST_USED_RESOLUTION
    )
    return KeyUse(caller_of(row), row.id, stale)


def caller_of(row: Any, session_id: int | None = None) -> Caller:
    """The caller of a row with ``CALLER_COLUMNS``."""
    return Caller(row.user_id, row.org_id, row.email, row.role, session_id)


def record_use(conn: Connection, key_id: int) -> None:
    conn.execute(
        update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=datetime.now(UTC))
    )


def authenticate(conn: Connection, key: str) -> Caller:
    """The caller of a live key, its use recorded on ``conn``."""
    found = find_key(conn, key)
    if found.stale:
        record_use(conn, found.key_id)
    return found.caller
