"""Organizations, users and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from tether.db.tables import api_keys, organizations, users
from tether.errors import Conflict, Invalid, NotFound, Unauthorized
from tether.security.api_keys import generate_key, hash_key
from tether.security.passwords import hash_password

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    user_id: int
    org_id: int
    email: str
    is_admin: bool


def get_or_create_org(conn: Connection, name: str) -> int:
    name = name.strip()
    if not name:
        raise Invalid("an organization needs a name")
    found = conn.execute(select(organizations.c.id).where(organizations.c.name == name)).first()
    if found:
        return int(found[0])
    return int(
        conn.execute(
            insert(organizations)
            .values(name=name, created_at=datetime.now(UTC))
            .returning(organizations.c.id)
        ).scalar_one()
    )


def create_user(
    conn: Connection, email: str, org: str, password: str | None, is_admin: bool = False
) -> int:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise Invalid(f"{email!r} is not an email address")
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise Conflict(f"a user {email} exists already")
    org_id = get_or_create_org(conn, org)
    return int(
        conn.execute(
            insert(users)
            .values(
                org_id=org_id,
                email=email,
                is_admin=is_admin,
                created_at=datetime.now(UTC),
                password_hash=hash_password(password) if password else None,
            )
            .returning(users.c.id)
        ).scalar_one()
    )


def create_api_key(conn: Connection, email: str, name: str = "default") -> str:
    """A new key for the user; the plain key is returned once and never stored."""
    user = conn.execute(
        select(users.c.id, users.c.org_id).where(users.c.email == email.strip().lower())
    ).first()
    if user is None:
        raise NotFound(f"no user {email}")
    key = generate_key()
    conn.execute(
        insert(api_keys).values(
            user_id=user.id,
            org_id=user.org_id,
            name=name,
            key_hash=hash_key(key),
            hint=key[:8],
            created_at=datetime.now(UTC),
        )
    )
    return key


def list_api_keys(conn: Connection, email: str) -> list[dict[str, object]]:
    rows = conn.execute(
        select(
            api_keys.c.id,
            api_keys.c.name,
            api_keys.c.hint,
            api_keys.c.created_at,
            api_keys.c.last_used_at,
            api_keys.c.revoked_at,
        )
        .join(users, users.c.id == api_keys.c.user_id)
        .where(users.c.email == email.strip().lower())
        .order_by(api_keys.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def revoke_api_key(conn: Connection, key_id: int) -> None:
    done = conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if not done.rowcount:
        raise NotFound(f"no active API key {key_id}")


def authenticate(conn: Connection, key: str) -> Caller:
    row = conn.execute(
        select(
            api_keys.c.id,
            api_keys.c.last_used_at,
            users.c.id.label("user_id"),
            users.c.org_id,
            users.c.email,
            users.c.is_admin,
        )
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None))
    ).first()
    if row is None:
        raise Unauthorized("invalid or revoked API key")
    now = datetime.now(UTC)
    last = row.last_used_at
    if (
        last is None
        or now - (last if last.tzinfo else last.replace(tzinfo=UTC)) > LAST_USED_RESOLUTION
    ):
        conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=now))
    return Caller(row.user_id, row.org_id, row.email, bool(row.is_admin))
