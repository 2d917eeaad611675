"""``OnceDep``: the ``Idempotency-Key`` header for a route that creates or changes something.

    def create_dataset(body: DatasetIn, caller: CallerDep, conn: ConnDep, once: OnceDep):
        return once(conn, lambda: datasets.create(conn, ...))

Without the header the work just runs. With it, the first request runs and its answer is
kept; the same request again (same method, path, query and body) gets that answer and does
nothing; another request with the same key is 422 ``idempotency_key_reused``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy import Connection

from tether import idempotency
from tether.api.deps import CallerDep

T = TypeVar("T")
P = TypeVar("P")
KEY_HELP = "any unique string (a UUID); the same request with the same key acts once"


class Once:
    def __init__(self, request: idempotency.Request | None) -> None:
        self.request = request

    def __call__(self, conn: Connection, work: Callable[[], T]) -> T | Any:
        if self.request is None:
            return work()
        replay = idempotency.reserve(conn, self.request)
        if replay is not None:
            return replay.response
        result = work()
        idempotency.finish(conn, self.request, jsonable_encoder(result))
        return result

    def prepared(
        self, conn: Connection, prepare: Callable[[], P], work: Callable[[P], T]
    ) -> T | Any:
        """For work with a slow part that only reads (a storage check calls the store): a
        request already answered is answered again from its key; else ``prepare`` runs
        before the key is reserved, so the reservation's write lock (all of SQLite) is not
        held while it waits on the network."""
        if self.request is not None:
            replay = idempotency.lookup(conn, self.request)
            if replay is not None:
                return replay.response
        ready = prepare()
        return self(conn, lambda: work(ready))


async def once(
    request: Request,
    caller: CallerDep,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200, description=KEY_HELP)
    ] = None,
) -> Once:
    if idempotency_key is None:
        return Once(None)
    digest = hashlib.sha256()
    digest.update(str(sorted(request.query_params.multi_items())).encode())
    digest.update(b"\0")
    digest.update(_canonical(await request.body()))
    scope = f"{request.method} {request.url.path}"
    return Once(idempotency.Request(caller.org_id, idempotency_key, scope, digest.hexdigest()))


def _canonical(body: bytes) -> bytes:
    """The same JSON however it is spaced or its keys are ordered."""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        return body


OnceDep = Annotated[Once, Depends(once)]
