"""Request size limits, enforced while the body streams in (Content-Length can be absent)."""

from __future__ import annotations

import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.api.errors import error_response

# Bulk import bodies have their own (larger) limit; multipart uploads are bounded here too,
# since the form parser would otherwise spool a body of any size to disk before the route
# sees it.
UPLOAD_PATH = re.compile(r"^/api/v1/(datasets/[^/]+/data-rows|projects/[^/]+/predictions)$")
# One file put into a storage: bounded by the asset size limit (the route says so first, from
# Content-Length; this catches a body that runs past what it announced).
ASSET_PATH = re.compile(r"^/api/v1/storages/[^/]+/objects$")


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        upload_limit: int | None = None,
        asset_limit: int | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit
        self.asset_limit = asset_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = bool(UPLOAD_PATH.match(scope["path"]))
        asset = (
            not upload and self.asset_limit is not None and bool(ASSET_PATH.match(scope["path"]))
        )
        limit = self.upload_limit if upload else self.asset_limit if asset else self.limit
        if limit is None:
            await self.app(scope, receive, send)
            return
        message = self._message(upload, limit)
        if asset:
            message = (
                f"the file is larger than the limit of {limit} bytes a file "
                "(TETHER_MAX_ASSET_BYTES)"
            )
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await error_response(413, "too_large", message)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            received: Any = await receive()
            seen += len(received.get("body", b""))
            if seen > limit:
                raise HTTPException(413, message)
            return received

        await self.app(scope, limited, send)

    @staticmethod
    def _message(upload: bool, limit: int) -> str:
        if upload:
            return f"the upload is larger than the limit of {limit} bytes"
        return f"request body is larger than the limit of {limit} bytes"
