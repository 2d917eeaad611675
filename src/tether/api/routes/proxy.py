"""``GET /storages/{id}/proxy?key=...&token=...``: an object streamed through tether, on the
authority of the token alone (no API key, no cookie: ``<img>`` and ``<video>`` send none).
The rules live in ``resolve.proxy``; this module parses, streams and closes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from tether.api.deps import ConnDep, SettingsDep
from tether.api.errors import documented, error_response
from tether.resolve import proxy

router = APIRouter(tags=["storages"])


def _cache(request: Request) -> proxy.BackendCache:
    """The app's cache of opened backends (one per app, so per database)."""
    state = request.app.state
    if getattr(state, "proxy_backends", None) is None:
        state.proxy_backends = proxy.BackendCache()
    cache: proxy.BackendCache = state.proxy_backends
    return cache


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The object's bytes."},
    206: {"description": "The range of the object asked for (`Range`)."},
    304: {"description": "Not modified since the ETag given in `If-None-Match`."},
    **documented(
        403,
        404,
        416,
        422,
        e403="The token is missing, altered, expired, for another object, or of an "
        "organization that does not own the storage.",
        e404="No such storage, or no such object in it (`object_not_found`).",
        e422="The storage cannot be read (`storage_error`, `access_denied`, ...).",
    ),
}


@router.get("/storages/{storage_id}/proxy", response_class=StreamingResponse, responses=RESPONSES)
@router.head(
    "/storages/{storage_id}/proxy",
    response_class=StreamingResponse,
    responses=RESPONSES,
    operation_id="head_proxy_object",
    summary="The headers of Proxy Object, without its bytes",
)
def proxy_object(
    request: Request,
    storage_id: int,
    key: Annotated[str, Query(max_length=4096, description="the object's key in the storage")],
    conn: ConnDep,
    settings: SettingsDep,
    token: Annotated[
        str | None,
        Query(max_length=8192, description="the asset token of the resolved URL"),
    ] = None,
) -> Response:
    """An object of a storage, as a resolved row's URL names it (`use_signed_urls` off):
    Content-Type, Content-Length, ETag (`If-None-Match` answers 304), Cache-Control for the
    token's remaining life; `Range` reads part of it (video seeking; one range). `HEAD`
    answers the same headers without the bytes."""
    asset = proxy.find(conn, settings, _cache(request), storage_id, key, token)
    try:
        served = proxy.serve(asset, request.headers, head=request.method == "HEAD")
    except proxy.RangeNotSatisfiable as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers["content-range"] = f"bytes */{asset.info.size}"
        return response
    if served.body is None:
        return Response(status_code=served.status, headers=served.headers)
    return _Streamed(served.body, served.status, served.headers)


class _Streamed(StreamingResponse):
    """Streams the backend's blocks as the read-ahead thread hands them to the event loop
    (``proxy.ReadAhead``: no thread hop a block), and stops the read however the response
    ends (done, or the client gone), so a file handle or a store's stream never waits for
    the garbage collector."""

    def __init__(self, body: proxy.ReadAhead, status: int, headers: dict[str, str]) -> None:
        media_type = headers.pop("content-type")
        super().__init__(body, status_code=status, headers=headers, media_type=media_type)
        self._source = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._source.close()
