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


def normal_media_type(value: str) -> str:
    """The media type ``value`` names, in any case (outer spaces ignored): the one rule for
    import options, rows and filters. ValueError says what is expected."""
    chosen = value.strip().upper()
    if chosen not in MEDIA_TYPES:
        raise ValueError(f"unknown media_type {value!r}; expected one of " + ", ".join(MEDIA_TYPES))
    return chosen


# Label Studio's URL of a file under the local files document root (what local storages'
# rows hold): a path, percent-encoded, after ``?d=``.
LOCAL_FILES_URI = "/data/local-files/?d="

_BY_EXTENSION = {ext: kind for kind, exts in EXTENSIONS.items() for ext in exts}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Label Studio names data keys after the tag that shows them.
_LS_KEY_HINTS = {
    "image": "IMAGE",
    "img": "IMAGE",
    "ocr": "IMAGE",
    "video": "VIDEO",
    "audio": "AUDIO",
    "pdf": "PDF",
    "html": "HTML",
    "hypertext": "HTML",
    "dialogue": "CONVERSATIONAL",
    "paragraphs": "CONVERSATIONAL",
    "text": "TEXT",
}

# A media type given for a URI whose extension says otherwise is a contradiction, except for
# these neighbours (a GeoTIFF shown as tiled imagery, the sound track of a video, a text-like
# file read as text, HTML, JSON or a conversation).
_TEXTUAL = frozenset({"TEXT", "HTML", "JSON", "CONVERSATIONAL"})
_COMPATIBLE = {
    "IMAGE": frozenset({"IMAGE", "TMS_GEO"}),
    "VIDEO": frozenset({"VIDEO", "AUDIO"}),
    "AUDIO": frozenset({"AUDIO", "VIDEO"}),
    "PDF": frozenset({"PDF"}),
    "DICOM": frozenset({"DICOM"}),
    "TMS_GEO": frozenset({"TMS_GEO"}),
    "CONVERSATIONAL": frozenset({"CONVERSATIONAL"}),
    "TEXT": _TEXTUAL,
    "HTML": _TEXTUAL,
    "JSON": _TEXTUAL,
}


# Schemes whose URIs carry an object key as it is (``s3://b/photo #1.jpg``): no query or
# fragment to cut off before the extension.
RAW_KEY_SCHEMES = ("s3://", "gs://", "azure-blob://")


def extension_of(uri: str) -> str:
    if uri.startswith(RAW_KEY_SCHEMES):
        found = _extension(uri)
        if found in _BY_EXTENSION:  # s3://b/photo #1.jpg; else s3://b/clip.mp4?X-Amz-...
            return found
    return _extension(uri.removeprefix(LOCAL_FILES_URI).split("?", 1)[0].split("#", 1)[0])


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def is_uri(value: str) -> bool:
    """A URL with a scheme, or a path-like string with a known media extension."""
    if _SCHEME.match(value) or value.startswith(LOCAL_FILES_URI):
        return True
    if any(ch in value for ch in "\n\t") or value != value.strip():
        return False
    return extension_of(value) in _BY_EXTENSION and (" " not in value or "/" in value)


def media_type_of_uri(uri: str) -> str | None:
    return _BY_EXTENSION.get(extension_of(uri))


def is_tile_template(value: str) -> bool:
    """A slippy-map tile URL such as ``https://t.example/{z}/{x}/{y}.png``."""
    return "{z}" in value and "{x}" in value and ("{y}" in value or "{-y}" in value)


def infer_for_string(value: str) -> str | None:
    """IMAGE for ``s3://b/x.JPG``, TMS_GEO for a ``{z}/{x}/{y}`` tile URL, TEXT for inline
    text, None for a URI we cannot place."""
    if is_uri(value):
        if "{" in value and is_tile_template(value):
            return "TMS_GEO"
        return media_type_of_uri(value)
    return "TEXT"


def compatible(inferred: str, chosen: str) -> bool:
    """Whether ``chosen`` may stand for an asset whose form says ``inferred``."""
    return chosen in _COMPATIBLE.get(inferred, (chosen,))


def asset_uri_of_task(data: dict[str, Any], media_type: str) -> str | None:
    """The URI of a Label Studio task's asset of ``media_type`` (what ``infer_for_task``
    found it by): the first URI value whose extension says that type, else a URI under a key
    named after the type's tag (``image``, ``video`` ...); None when there is none."""
    uris = [(k, v) for k, v in data.items() if isinstance(v, str) and is_uri(v)]
    for _key, value in uris:
        if media_type_of_uri(value) == media_type:
            return value
    for key, value in uris:
        if isinstance(key, str) and _LS_KEY_HINTS.get(key.lower()) == media_type:
            return value
    return None


def infer_for_task(data: dict[str, Any]) -> str:
    """A Label Studio task's media type (the rule README.md documents).

    1. the first string value (in key order) that is a URI with a known extension;
    2. else a key named after a Label Studio tag (``image``, ``video``, ``audio``, ``pdf``,
       ``html``, ``dialogue`` ...), a media key winning over ``text``;
    3. else TEXT when every value is a string (or null) and none is a URI;
    4. else JSON.
    """
    textual = True
    for value in data.values():
        if isinstance(value, str):
            if is_uri(value):
                textual = False
                kind = media_type_of_uri(value)
                if kind:
                    return kind
        elif value is not None:
            textual = False
    hinted = None
    for key in data:
        hint = _LS_KEY_HINTS.get(key.lower()) if isinstance(key, str) else None
        if hint is not None and hint != "TEXT":
            return hint
        hinted = hinted or hint
    if hinted or textual:
        return "TEXT"
    return "JSON"
