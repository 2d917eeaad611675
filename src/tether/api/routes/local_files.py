"""``GET /data/local-files/?d=...``: files under the document root, in Label Studio's URL form
(so its tasks work unchanged), for a signed-in caller whose organization has a local storage
covering the file (``resolve.local_files``)."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from tether.api.deps import CallerDep, ConnDep, SettingsDep
from tether.api.errors import documented
from tether.resolve.local_files import local_file

router = APIRouter(tags=["local files"])
CACHE_CONTROL = "private, max-age=300"


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
            e403="No local storage of the caller's organization covers the file.",
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
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
) -> Response:
    """A file of a local storage, with its Content-Type, Content-Length, ETag and
    Last-Modified; `Range` reads part of it (video seeking), `If-None-Match` answers 304."""
    path = local_file(conn, settings, caller.org_id, d)
    info = os.stat(path)
    etag = f'"{info.st_size:x}-{info.st_mtime_ns:x}"'
    headers = {"etag": etag, "cache-control": CACHE_CONTROL}
    wanted = request.headers.get("if-none-match")
    tags = {tag.strip().removeprefix("W/") for tag in (wanted or "").split(",")}
    if wanted is not None and (etag in tags or "*" in tags):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, headers=headers, stat_result=info)
