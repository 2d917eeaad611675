"""A streamed answer that always lets go of what it streams from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send


class ClosingStream(StreamingResponse):
    """Streams ``content`` and calls ``close`` however the response ends (done, failed, or
    the client gone), so a snapshot, its connection or a temporary file never wait for the
    garbage collector."""

    def __init__(self, content: Iterator[bytes], close: Callable[[], Any], **kw: Any) -> None:
        super().__init__(content, **kw)
        self.close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await run_in_threadpool(self.close)
