"""Organizations: the tenants that own users, keys, schema and data."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from tether.db.tables import organizations
from tether.errors import Invalid, NotFound
from tether.timeutil import iso


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
            .values(name=name, created_at=datetime.now(UTC), external_id=new_external_id())
            .returning(organizations.c.id)
        ).scalar_one()
    )


def new_external_id() -> str:
    """An organization's sts:ExternalId: random, made once, never chosen by a user."""
    return "tether-" + secrets.token_hex(16)


def get_org(conn: Connection, org_id: int) -> dict[str, Any]:
    row = conn.execute(
        select(
            organizations.c.id,
            organizations.c.name,
            organizations.c.created_at,
            organizations.c.external_id,
        ).where(organizations.c.id == org_id)
    ).first()
    if row is None:
        raise NotFound(f"no organization {org_id}")
    return {
        "id": row.id,
        "name": row.name,
        "external_id": row.external_id,
        "created_at": iso(row.created_at),
    }
