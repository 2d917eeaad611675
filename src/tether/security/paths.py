"""The one path guard: a user-supplied path is accepted only when it names something under a
configured root, after normalising it and following every symlink.

Refused outright, before the file system is asked: NUL and other control characters,
backslashes (a Windows separator on one side of a check and a name on the other), ``..``
segments (even ones that would stay under the root), drive letters, and -- for paths taken
from a URL -- any of those hidden behind percent-encoding, once or many times over.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

from tether.errors import Invalid

MAX_DECODE_ROUNDS = 4
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePath(Invalid):
    """A path that could name something outside the root it must stay under."""

    code = "unsafe_path"


def resolve_under(
    root: str | os.PathLike[str],
    path: str,
    *,
    url_encoded: bool = False,
    allow_absolute: bool = False,
) -> Path:
    """The real (symlink-free) path that ``path`` names under ``root``.

    ``path`` is relative to ``root``; with ``allow_absolute`` it may instead be an absolute
    path that lies under ``root``. With ``url_encoded`` it is percent-decoded first (once;
    what still decodes to a separator, a dot segment or NUL after that is refused). Raises
    ``UnsafePath``; the target itself need not exist, but ``root`` must.
    """
    if url_encoded:
        path = _decode(path)
    _check_text(path)
    if path.startswith("/") and not allow_absolute:
        raise UnsafePath("the path must be relative to the root", {"path": path})
    base = Path(root).resolve(strict=True)
    real = (base / path).resolve(strict=False)
    if os.path.commonpath([base, real]) != str(base):
        raise UnsafePath("the path leads outside the root", {"path": path})
    return real


def _decode(path: str) -> str:
    """One round of percent-decoding; any further round that changes the text must not
    reveal anything the checks refuse (double-encoded traversal such as ``%252e%252e``)."""
    try:
        decoded = unquote(path, errors="strict")
        layer = decoded
        for _ in range(MAX_DECODE_ROUNDS):
            deeper = unquote(layer, errors="strict")
            if deeper == layer:
                return decoded
            _check_text(deeper)
            layer = deeper
    except UnicodeDecodeError:
        raise UnsafePath("the path is not valid percent-encoded UTF-8", {"path": path}) from None
    raise UnsafePath("the path is percent-encoded too many times", {"path": path})


def _check_text(path: str) -> None:
    if not path:
        raise UnsafePath("the path is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise UnsafePath("the path contains a control character (or NUL)", {"path": path})
    if "\\" in path:
        raise UnsafePath("the path contains a backslash", {"path": path})
    if _DRIVE.match(path):
        raise UnsafePath("the path starts with a drive letter", {"path": path})
    if ".." in path.split("/"):
        raise UnsafePath("the path contains a '..' segment", {"path": path})
