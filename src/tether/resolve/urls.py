"""The tether URLs a browser loads an asset from when tether streams it itself: each carries
a short-lived token (``resolve.tokens``) so ``<img>`` and ``<video>`` tags work without
headers. Relative to the server's root (the caller knows its own origin)."""

from __future__ import annotations

from urllib.parse import urlencode

from tether.config import Settings
from tether.resolve import tokens

PROXY_PATH = "/api/v1/storages/{storage_id}/proxy"
LOCAL_FILES_PATH = "/data/local-files/"


def object_grant(storage_id: int, key: str) -> tokens.Grant:
    return ("object", storage_id, key)


def local_grant(d: str) -> tokens.Grant:
    return ("local", d)


def proxy_url(settings: Settings, org_id: int, storage_id: int, key: str, ttl_seconds: int) -> str:
    """``GET /api/v1/storages/{id}/proxy?key=...&token=...``: the object streamed by tether."""
    token = tokens.issue(settings, org_id, object_grant(storage_id, key), ttl_seconds)
    path = PROXY_PATH.format(storage_id=storage_id)
    return f"{path}?{urlencode({'key': key, 'token': token})}"


def local_file_url(settings: Settings, org_id: int, d: str, ttl_seconds: int) -> str:
    """``GET /data/local-files/?d=...&token=...``: Label Studio's form, with a token."""
    token = tokens.issue(settings, org_id, local_grant(d), ttl_seconds)
    return f"{LOCAL_FILES_PATH}?{urlencode({'d': d, 'token': token})}"
