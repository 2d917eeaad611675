"""Consecutive ids handed out from ``id_blocks``, so a bulk insert knows every new row's id
without a RETURNING round trip (data rows), and custom metadata fields get their keys."""

from __future__ import annotations

from sqlalchemy import Connection, text


def reserve(conn: Connection, name: str, count: int = 1) -> int:
    """Take ``count`` consecutive ids of the block ``name`` in the caller's transaction;
    returns the first. Ids reserved and not used leave gaps, which is fine."""
    end = conn.execute(
        text("UPDATE id_blocks SET next_id = next_id + :n WHERE name = :name RETURNING next_id"),
        {"n": count, "name": name},
    )
    return int(end.scalar_one()) - count
