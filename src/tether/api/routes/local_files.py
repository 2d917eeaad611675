"""``GET /data/local-files/?d=...``: files under the document root, in Label Studio's URL form
(so its tasks work unchanged), for a signed-in caller -- or the holder of an asset token for
that path (``resolve.urls.local_file_url``: ``<img>`` tags send no headers) -- whose
organization has a local storage covering the file (``resolve.local_files``)."""

from __future__ import annotations

import os
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from tether.accounts import Caller
from tether.api.deps import ConnDep, OptionalCallerDep, SettingsDep
from tether.api.errors import documented
from tether.config import Settings
from tether.errors import Unauthorized
from tether.resolve import tokens, urls
from tether.resolve.local_files import local_file

router = APIRouter(tags=["local files"])
MAX_AGE = 300  # seconds a browser may keep a file (never past its token's expiry)


@router.get(
    "/data/local-files/",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."},
        206: {"description": "The range of the file asked for (`Range`)."},
        304: {"description": "Not modified since the ETag given in `If-None-Match`."},
        **documented(
            401,
            403,
            404,
            422,
            e401="Neither a signed-in caller nor a `token`.",
            e403="No local storage of the caller's organization covers the file, or the "
            "token is altered, expired or for another path.",
            e404="Local file serving is off, or no such file.",
            e422="The path is not a plain relative path inside the document root.",
        ),
    },
)
def get_local_file(
    request: Request,
    d: Annotated[
        str,
        Query(
            max_length=4096,
            description="the file's path under TETHER_LOCAL_FILES_DOCUMENT_ROOT, as Label "
            "Studio writes it (`dataset1/image.jpg`)",
        ),
    ],
    caller: OptionalCallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    token: Annotated[
        str | None,
        Query(
            max_length=8192,
            description="an asset token for this `d` (a resolved row's URL): no sign-in needed",
        ),
    ] = None,
) -> Response:
    """A file of a local storage, with its Content-Type, Content-Length, ETag and
    Last-Modified; `Range` reads part of it (video seeking), `If-None-Match` answers 304."""
    org_id, max_age = _authority(settings, caller, token, d)
    path = local_file(conn, settings, org_id, d)
    info = os.stat(path)
    etag = f'"{info.st_size:x}-{info.st_mtime_ns:x}"'
    headers = {"etag": etag, "cache-control": f"private, max-age={max_age}"}
    wanted = request.headers.get("if-none-match")
    tags = {tag.strip().removeprefix("W/") for tag in (wanted or "").split(",")}
    if wanted is not None and (etag in tags or "*" in tags):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, headers=headers, stat_result=info)


def _authority(
    settings: Settings, caller: Caller | None, token: str | None, d: str
) -> tuple[int, int]:
    """(organization, max-age): a signed-in caller's, else a valid token's for ``d``."""
    if caller is not None:
        return caller.org_id, MAX_AGE
    if token is None:
        raise Unauthorized("sign in, send an API key, or use a resolved URL with its token")
    org_id, expires = tokens.verify_until(settings, token, urls.local_grant(d))
    return org_id, max(0, min(MAX_AGE, expires - int(time.time())))
