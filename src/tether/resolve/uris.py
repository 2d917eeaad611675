"""What a stored URI names: which kind of store, which bucket/container/db, which key.

The forms are the ones tether's backends write (``Storage.uri``) and Label Studio tasks use:

- ``s3://bucket/key``, ``gs://bucket/key``, ``azure-blob://container/blob``: the key is
  everything after the bucket's ``/``, raw (``s3://b/a b#1.jpg`` names ``a b#1.jpg``), as
  sync writes them and as the AWS CLI and gsutil do;
- ``redis://<db>/<key, percent-encoded>`` and ``memory://<bucket>/<key, percent-encoded>``;
- ``/data/local-files/?d=<path, percent-encoded>`` (Label Studio's local files);
- ``/data/upload/<key, percent-encoded>`` (tether's managed storage of uploads).

``http(s)://`` URLs are ``direct``: a browser loads them as they are. A string that is not
URI-like at all (inline text) is ``None``: nothing to resolve. A URI-like string of no known
form is ``Unknown`` with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from tether.storages.local import UPLOAD_URI_PREFIX, URI_PREFIX, ManagedLocalStorage

# scheme -> the storage type whose objects URIs of that scheme name
CLOUD_SCHEMES = {"s3": "s3", "gs": "gcs", "azure-blob": "azure_blob"}
ENCODED_SCHEMES = {"redis": "redis", "memory": "memory"}  # keys percent-encoded
_URI_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
LOCAL_FILES_PATH = URI_PREFIX.split("?", 1)[0]  # "/data/local-files/"


@dataclass(frozen=True, slots=True)
class ObjectURI:
    """An object of a storage: ``type`` is the storage type, ``container`` its bucket,
    container or (Redis) db number, ``key`` the object's full key."""

    type: str
    container: str
    key: str


@dataclass(frozen=True, slots=True)
class LocalFileURI:
    """A file under the operator's document root (``d`` of ``/data/local-files/?d=``)."""

    d: str


@dataclass(frozen=True, slots=True)
class UploadURI:
    """A key of the organization's managed storage of uploads."""

    key: str


@dataclass(frozen=True, slots=True)
class Direct:
    """An ``http(s)://`` URL: the browser loads it from where it is; tether never fetches it."""


@dataclass(frozen=True, slots=True)
class Unknown:
    reason: str


Parsed = ObjectURI | LocalFileURI | UploadURI | Direct | Unknown


def looks_like_uri(value: str) -> bool:
    """Whether a string is meant as a reference (``scheme://`` or tether's own paths), not as
    inline text."""
    return bool(_URI_LIKE.match(value)) or value.startswith((LOCAL_FILES_PATH, UPLOAD_URI_PREFIX))


def parse(value: str) -> Parsed | None:
    """What ``value`` names; None when it is not a URI at all (inline text)."""
    if value.startswith(UPLOAD_URI_PREFIX):
        key = ManagedLocalStorage.key_of(value)
        return UploadURI(key) if key else Unknown("not a key of the managed storage of uploads")
    if value.startswith(LOCAL_FILES_PATH):
        return _local_file(value)
    if not _URI_LIKE.match(value):
        return None
    scheme, _, rest = value.partition("://")
    scheme = scheme.lower()
    if scheme in ("http", "https"):
        return Direct()
    if scheme in CLOUD_SCHEMES:
        container, slash, key = rest.partition("/")
        if not container or not slash or not key:
            return Unknown(f"a {scheme}:// URI needs a bucket and a key: {scheme}://bucket/key")
        return ObjectURI(CLOUD_SCHEMES[scheme], container, key)
    if scheme in ENCODED_SCHEMES:
        container, slash, encoded = rest.partition("/")
        try:
            key = unquote(encoded, errors="strict")
        except UnicodeDecodeError:
            return Unknown(f"the key of a {scheme}:// URI is not percent-encoded UTF-8")
        if not container or not slash or not key:
            return Unknown(f"a {scheme}:// URI needs a {_CONTAINER[scheme]} and a key")
        return ObjectURI(ENCODED_SCHEMES[scheme], unquote(container), key)
    return Unknown(f"tether resolves no {scheme}:// URIs")


_CONTAINER = {"redis": "db number", "memory": "bucket"}


def _local_file(value: str) -> Parsed:
    parts = urlsplit(value)
    if parts.path != LOCAL_FILES_PATH:
        return Unknown("a local-files URI is /data/local-files/?d=<path>")
    found = parse_qs(parts.query, keep_blank_values=True).get("d")
    if not found or not found[0]:
        return Unknown("a local-files URI needs d=<path under the document root>")
    return LocalFileURI(found[0])
