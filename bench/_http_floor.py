"""The HTTP floors of the proxy benchmark: the bare uvicorn ``tether serve`` runs on (same
options), answering any GET with one object's bytes, no framework, no thread hop, no
database, no token: what a client reads from it is the most Python ASGI streaming gives on
this machine.

    python bench/_http_floor.py PORT FILE                # a local file, 1 MiB blocks
    python bench/_http_floor.py PORT s3 FIELDS_JSON KEY  # an S3 object, through obstore

The S3 floor opens the store as tether does (``open_storage("s3", **fields)``) and streams
with obstore's async API on the event loop (``get_async``, 1 MiB chunks handed to uvicorn
as they are, no copy): one GET a request, no ``stat`` before it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

BLOCK = 1 << 20
HEAD = [(b"content-type", b"video/mp4")]


def app_for(path: str) -> Any:
    size = os.path.getsize(path)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", str(size).encode()), *HEAD]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with open(path, "rb") as file:
            while block := file.read(BLOCK):
                await send({"type": "http.response.body", "body": block, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def s3_app_for(fields: dict[str, Any], key: str) -> Any:
    import obstore

    from tether.storages.registry import open_storage

    store = open_storage("s3", **fields)._store  # type: ignore[attr-defined]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        got = await obstore.get_async(store, key)
        headers = [(b"content-length", str(got.meta["size"]).encode()), *HEAD]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in got.stream(min_chunk_size=BLOCK):
            body = memoryview(chunk)
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


if __name__ == "__main__":
    import uvicorn

    if sys.argv[2] == "s3":
        app = s3_app_for(json.loads(sys.argv[3]), sys.argv[4])
    else:
        app = app_for(sys.argv[2])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
