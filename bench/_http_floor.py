"""The HTTP floor of the proxy benchmark: the bare uvicorn ``tether serve`` runs on (same
options), answering any GET with one file's bytes in 1 MiB blocks read on the event loop,
no framework, no thread hop, no store. What a client reads from it is the most any Python
ASGI streaming can give on this machine.

    python bench/_http_floor.py PORT FILE
"""

from __future__ import annotations

import os
import sys
from typing import Any

BLOCK = 1 << 20


def app_for(path: str) -> Any:
    size = os.path.getsize(path)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", str(size).encode()), (b"content-type", b"video/mp4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with open(path, "rb") as file:
            while block := file.read(BLOCK):
                await send({"type": "http.response.body", "body": block, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app_for(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
