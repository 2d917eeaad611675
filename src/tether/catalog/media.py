"""Media types, and inferring one from a URI or a Label Studio data dict."""

from __future__ import annotations

import re
from typing import Any

MEDIA_TYPES = (
    "IMAGE",
    "VIDEO",
    "TEXT",
    "AUDIO",
    "PDF",
    "HTML",
    "DICOM",
    "TMS_GEO",
    "CONVERSATIONAL",
    "JSON",
)

EXTENSIONS = {
    "IMAGE": ("jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff", "svg", "heic", "avif"),
    "VIDEO": ("mp4", "mov", "webm", "avi", "mkv", "m4v", "mpeg", "mpg", "ogv"),
    "AUDIO": ("mp3", "wav", "flac", "ogg", "m4a", "aac", "opus", "wma"),
    "TEXT": ("txt", "md", "csv", "tsv"),
    "PDF": ("pdf",),
    "HTML": ("html", "htm"),
    "DICOM": ("dcm", "dicom"),
    "JSON": ("json", "ndjson"),
}
_BY_EXTENSION = {ext: kind for kind, exts in EXTENSIONS.items() for ext in exts}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Label Studio names data keys after the tag that shows them.
_LS_KEY_HINTS = {
    "image": "IMAGE",
    "img": "IMAGE",
    "video": "VIDEO",
    "audio": "AUDIO",
    "pdf": "PDF",
    "html": "HTML",
    "text": "TEXT",
    "dialogue": "CONVERSATIONAL",
}


def extension_of(uri: str) -> str:
    path = uri.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def is_uri(value: str) -> bool:
    """A URL with a scheme, or a path-like string with a known media extension."""
    if _SCHEME.match(value):
        return True
    if any(ch in value for ch in "\n\t") or value != value.strip():
        return False
    return extension_of(value) in _BY_EXTENSION and (" " not in value or "/" in value)


def media_type_of_uri(uri: str) -> str | None:
    return _BY_EXTENSION.get(extension_of(uri))


def infer_for_string(value: str) -> str | None:
    """IMAGE for ``s3://b/x.JPG``, TEXT for inline text, None for a URI we cannot place."""
    if is_uri(value):
        return media_type_of_uri(value)
    return "TEXT"


def infer_for_task(data: dict[str, Any]) -> str:
    """A Label Studio task's media type: from its URI-valued fields, else by key name.

    The first string value that is a URI with a known extension decides; failing that, the
    first key named like a Label Studio tag (``image``, ``audio`` ...); a task with only
    inline text is TEXT, and anything else is JSON.
    """
    strings = [(k, v) for k, v in data.items() if isinstance(v, str)]
    for _key, value in strings:
        if is_uri(value) and (kind := media_type_of_uri(value)):
            return kind
    for key, _value in data.items():
        hint = _LS_KEY_HINTS.get(str(key).lower())
        if hint:
            return hint
    if strings and all(not is_uri(v) for _k, v in strings):
        return "TEXT"
    return "JSON"
