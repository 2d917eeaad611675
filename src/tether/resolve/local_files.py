"""Which file a Label Studio local-files URL names, if tether may serve it.

``/data/local-files/?d=<path>`` is Label Studio's form: ``d`` is a path under the operator's
document root (``TETHER_LOCAL_FILES_DOCUMENT_ROOT``), so tasks written for Label Studio work
unchanged. A file is served only when local serving is on, when the path names a regular
file inside the root once every symlink is followed, and when a local storage of the
caller's organization covers it: the root is the operator's, but each organization sees
only the folders it connected.

``d`` arrives decoded once (by the framework). What is refused, each with its reason:
an empty path, NUL bytes, backslashes, an absolute path, ``.`` or ``..`` segments, escapes
left after that decoding (a double-encoded path), and a path whose real location lies
outside the root (a symlink leading out).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import orjson
from sqlalchemy import Connection, select

from tether.config import Settings
from tether.db.tables import storages
from tether.errors import Forbidden, Invalid, NotFound

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def checked_path(d: str) -> str:
    """``d`` as a relative path of plain segments; ``Invalid`` naming what is wrong."""
    if not d:
        raise Invalid("d is empty: give the file's path under the document root")
    if "\x00" in d:
        raise Invalid("d holds a NUL byte")
    if "\\" in d:
        raise Invalid("d holds a backslash: separate folders with /")
    if _ESCAPE.search(d):
        raise Invalid("d holds a percent-escape after decoding (encoded twice)")
    if d.startswith("/") or re.match(r"^[A-Za-z]:", d):
        raise Invalid("d is an absolute path: give it relative to the document root")
    segments = d.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise Invalid("d holds a . or .. segment")
    if any(segment == "" for segment in segments):
        raise Invalid("d holds an empty segment (// or a trailing /)")
    return d


def local_file(conn: Connection, settings: Settings, org_id: int, d: str) -> Path:
    """The real path of the file ``d`` names, for the caller's organization to read."""
    root = settings.local_files_document_root
    if not settings.local_files_serving_enabled or root is None:
        raise NotFound(
            "local file serving is off (TETHER_LOCAL_FILES_SERVING_ENABLED and "
            "TETHER_LOCAL_FILES_DOCUMENT_ROOT)"
        )
    relative = checked_path(d)
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    if not _inside(real, real_root):
        raise Invalid("d leads outside the document root")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise NotFound(f"no file {d!r} under the document root") from None
    if not stat.S_ISREG(mode):
        raise NotFound(f"{d!r} is not a file")
    if not any(_inside(real, folder) for folder in _folders(conn, org_id)):
        raise Forbidden(f"no local storage of your organization covers {d!r}")
    return Path(real)


def _folders(conn: Connection, org_id: int) -> list[str]:
    """The real folders of the organization's local storages (tether's managed folder of
    uploads is served by its own URLs, not this one)."""
    configs = conn.execute(
        select(storages.c.config).where(storages.c.org_id == org_id, storages.c.type == "local")
    ).scalars()
    folders = []
    for raw in configs:
        config = orjson.loads(raw)
        if config.get("managed") or not config.get("path"):
            continue
        folders.append(os.path.realpath(config["path"]))
    return folders


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
