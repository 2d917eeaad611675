"""Users of an organization. ``create_user`` serves the local operator (the CLI, the demo);
the other functions serve the API and take the caller, whose role they check first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from tether.accounts.orgs import get_or_create_org
from tether.accounts.roles import ADMIN, MEMBER, Caller, check_role, require_admin
from tether.db.tables import api_keys, organizations, sessions, users
from tether.errors import Conflict, Invalid, NotFound
from tether.security.passwords import hash_password
from tether.timeutil import iso

MAX_PASSWORD = 1024  # argon2 hashes whatever it is given: bound the work per request
COLUMNS = (users.c.id, users.c.email, users.c.role, users.c.created_at, users.c.password_hash)


def normal_email(email: str) -> str:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 320:
        raise Invalid(f"{email!r} is not an email address")
    return email


def _password_hash(password: str | None) -> str | None:
    if password is None:
        return None
    if not password or len(password) > MAX_PASSWORD:
        raise Invalid(f"a password needs 1 to {MAX_PASSWORD} characters")
    return hash_password(password)


def create_user(
    conn: Connection,
    email: str,
    org: str,
    password: str | None,
    is_admin: bool = False,
    *,
    role: str | None = None,
) -> int:
    """A new user in the organization named ``org`` (created when new)."""
    role = check_role(role or (ADMIN if is_admin else MEMBER))
    email = normal_email(email)
    org_id = get_or_create_org(conn, org)
    return _insert(conn, org_id, email, role, password)


def _insert(conn: Connection, org_id: int, email: str, role: str, password: str | None) -> int:
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise Conflict(f"a user {email} exists already")
    return int(
        conn.execute(
            insert(users)
            .values(
                org_id=org_id,
                email=email,
                role=role,
                created_at=datetime.now(UTC),
                password_hash=_password_hash(password),
            )
            .returning(users.c.id)
        ).scalar_one()
    )


def _public(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "role": row.role,
        "created_at": iso(row.created_at),
        "can_sign_in": row.password_hash is not None,
    }


def get_user(conn: Connection, org_id: int, user_id: int) -> dict[str, Any]:
    row = conn.execute(
        select(*COLUMNS).where(users.c.id == user_id, users.c.org_id == org_id)
    ).first()
    if row is None:
        raise NotFound(f"no user {user_id}")
    return _public(row)


def list_users(conn: Connection, caller: Caller) -> list[dict[str, Any]]:
    require_admin(caller.role, "list the organization's users")
    rows = conn.execute(
        select(*COLUMNS).where(users.c.org_id == caller.org_id).order_by(users.c.id)
    )
    return [_public(r) for r in rows]


def invite_user(
    conn: Connection, caller: Caller, email: str, role: str = MEMBER, password: str | None = None
) -> dict[str, Any]:
    """A new user in the caller's organization; without a password they cannot sign in
    until an admin sets one (API keys work either way)."""
    require_admin(caller.role, "add users")
    user_id = _insert(conn, caller.org_id, normal_email(email), check_role(role), password)
    return get_user(conn, caller.org_id, user_id)


def update_user(
    conn: Connection,
    caller: Caller,
    user_id: int,
    role: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    require_admin(caller.role, "change users")
    get_user(conn, caller.org_id, user_id)
    values: dict[str, Any] = {}
    if role is not None:
        values["role"] = check_role(role)
    if password is not None:
        values["password_hash"] = _password_hash(password)
    if values:
        with conn.begin_nested():
            _lock_org(conn, caller.org_id)
            conn.execute(update(users).where(users.c.id == user_id).values(**values))
            _keep_an_admin(conn, caller.org_id)
    if password is not None:  # a new password signs the user out everywhere
        conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
    return get_user(conn, caller.org_id, user_id)


def remove_user(conn: Connection, caller: Caller, user_id: int) -> None:
    """Delete the user with their API keys and sessions (what they created stays)."""
    require_admin(caller.role, "remove users")
    get_user(conn, caller.org_id, user_id)
    with conn.begin_nested():
        _lock_org(conn, caller.org_id)
        conn.execute(delete(api_keys).where(api_keys.c.user_id == user_id))
        conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        conn.execute(delete(users).where(users.c.id == user_id))
        _keep_an_admin(conn, caller.org_id)


def _lock_org(conn: Connection, org_id: int) -> None:
    """Serialise changes to an organization's admins: on PostgreSQL by locking its row, so
    two admins demoting each other at once cannot both pass ``_keep_an_admin``; SQLite has
    one writer at a time anyway."""
    conn.execute(select(organizations.c.id).where(organizations.c.id == org_id).with_for_update())


def _keep_an_admin(conn: Connection, org_id: int) -> None:
    """After a write: refuse (rolling back the savepoint) if no admin is left."""
    admins = conn.execute(
        select(func.count())
        .select_from(users)
        .where(users.c.org_id == org_id, users.c.role == ADMIN)
    ).scalar_one()
    if not admins:
        raise Conflict(
            "an organization keeps at least one admin: make another user admin first",
            {"org_id": org_id},
        )
