"""Idempotency keys: a request sent again with the same ``Idempotency-Key`` gets the first
answer back and changes nothing.

The key is reserved in the request's own transaction before the work starts and its answer
stored before that transaction commits, so the key and what the request did commit together
or not at all (a request that failed may be sent again and does its work then). A second
request with the same key waits on the first one's row (a unique index on PostgreSQL, the
write lock on SQLite) and then reads its answer. Bulk imports keep their key on the job.
A key is kept for ``KEEP`` (a day, as payment APIs do): after that it is new again, and
``purge`` forgets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tether.db.tables import idempotency_keys
from tether.errors import Conflict, Invalid

KEEP = timedelta(hours=24)


class KeyReused(Invalid):
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Request:
    """What one key stands for: ``scope`` is the method and path, ``fingerprint`` a hash of
    the query and the body."""

    org_id: int
    key: str
    scope: str
    fingerprint: str


@dataclass(frozen=True)
class Replay:
    response: Any


def reserve(conn: Connection, request: Request) -> Replay | None:
    """Take the key for this request (None: go on and do the work), or the first answer."""
    now = datetime.now(UTC)
    if _insert(conn, request, now):
        return None
    first = conn.execute(_this_key(request, select(idempotency_keys))).one()
    if _aware(first.created_at) < now - KEEP:  # forgotten: the key is new again
        conn.execute(_this_key(request, delete(idempotency_keys)))
        if _insert(conn, request, now):
            return None
        return reserve(conn, request)
    if first.scope != request.scope or first.fingerprint != request.fingerprint:
        raise KeyReused(
            f"the Idempotency-Key {request.key!r} was used for another request "
            f"({first.scope}); send a new key for a new request",
            {"first": first.scope, "now": request.scope},
        )
    if first.response is None:  # only visible to the transaction that holds it
        raise Conflict(f"the request with Idempotency-Key {request.key!r} is still running")
    return Replay(orjson.loads(first.response))


def lookup(conn: Connection, request: Request) -> Replay | None:
    """The first answer when a finished request holds the key, without reserving it (a
    read: no lock); None otherwise (``reserve`` then decides)."""
    first = conn.execute(_this_key(request, select(idempotency_keys))).first()
    if first is None or first.response is None:
        return None
    if _aware(first.created_at) < datetime.now(UTC) - KEEP:
        return None
    if first.scope != request.scope or first.fingerprint != request.fingerprint:
        return None  # reserve() says so
    return Replay(orjson.loads(first.response))


def purge(conn: Connection, now: datetime | None = None) -> int:
    """Forget the keys older than ``KEEP``; returns how many went (for a periodic task)."""
    cutoff = (now or datetime.now(UTC)) - KEEP
    gone = conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff))
    return int(gone.rowcount or 0)


def purge_expired(engine: Engine) -> int:
    """The housekeeping chore: ``purge`` in a transaction of its own."""
    with engine.begin() as conn:
        return purge(conn)


def _insert(conn: Connection, request: Request, now: datetime) -> bool:
    try:
        with conn.begin_nested():
            conn.execute(
                insert(idempotency_keys).values(
                    org_id=request.org_id,
                    key=request.key,
                    scope=request.scope,
                    fingerprint=request.fingerprint,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def _this_key(request: Request, statement: Any) -> Any:
    return statement.where(
        idempotency_keys.c.org_id == request.org_id, idempotency_keys.c.key == request.key
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def finish(conn: Connection, request: Request, response: Any) -> None:
    """Keep the answer (plain JSON data) of the request that reserved the key."""
    text = orjson.dumps(response, option=orjson.OPT_NON_STR_KEYS).decode()
    conn.execute(_this_key(request, update(idempotency_keys)).values(response=text))
