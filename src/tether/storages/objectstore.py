"""What the S3, GCS and Azure backends share: the ``Storage`` protocol on top of an obstore
store, and the translation of obstore's errors into tether's.

obstore lists by path segment (``img`` finds ``img/1.jpg`` but not ``img2/x.jpg``) and
drops the object named exactly ``img``; tether's prefixes are plain string prefixes. So a
listing asks obstore for the prefix's parent "directory", starting just before the prefix
(``offset``, which S3 and GCS send to the server as start-after / startOffset), and stops
at the first key past the prefix's range: the listing costs what the prefix holds.

Keys obstore cannot address -- an empty segment (``a//b``, ``/a``) -- make a listing fail
with a ``StorageError`` naming the key rather than silently skipping it; a ``dir/`` marker is
listed by obstore as ``dir``. Such keys given to ``stat``, ``read``, ``write``, ``delete`` or
``sign`` are refused as ``InvalidConfig`` (code ``invalid_object_key``), as the other backends
refuse keys they cannot hold.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from tether.storages.base import (
    PAGE_SIZE,
    AccessDenied,
    InvalidConfig,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    Unreachable,
    config_error,
    direct_child,
)

MAX_CODE_POINT = 0x10FFFF
STREAM_PART = 8 * 1024 * 1024  # bytes of one part of a streamed (multipart) upload
STREAM_CONCURRENCY = 2  # parts of one streamed upload in flight at once
_UNREACHABLE = re.compile(
    r"error sending request|connection refused|connect error|dns error|timed out|timeout"
    r"|tcp connect|failed to lookup|certificate|tls",
    re.IGNORECASE,
)
_NO_CONTAINER = re.compile(
    r"NoSuchBucket|ContainerNotFound|bucket does not exist|no bucket named|404 Not Found"
)
# A server refuses a range only when it starts at or past the object's end.
_RANGE_PAST_END = re.compile(r"416 Range Not Satisfiable|InvalidRange", re.IGNORECASE)
_DENIED = re.compile(
    r"403 Forbidden|401 Unauthorized|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch"
    r"|AuthenticationFailed|AuthorizationFailure",
    re.IGNORECASE,
)


def no_credentials(type_: str, needs: str, field: str) -> InvalidConfig:
    """The refusal of a cloud storage given no credentials while ambient ones are off."""
    return config_error(
        f"{type_} storage needs {needs} (this server does not lend its own cloud identity "
        "to storages)",
        field=field,
    )


def build_store(type_: str, factory: Any, container: str, **kwargs: Any) -> Any:
    """``factory(container, **kwargs)``: an obstore store, its builder's refusal in tether's
    words."""
    try:
        return factory(container, **kwargs)
    except Exception as exc:  # obstore's builder refuses a config
        raise config_error(f"{type_} storage config: {exc}".split("\n")[0]) from exc


def short_retry(max_retries: int, timeout_s: float) -> dict[str, Any]:
    """An obstore retry config: few retries, bounded in time (obstore's default is 10)."""
    return {
        "max_retries": max_retries,
        "retry_timeout": timedelta(seconds=timeout_s),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
        },
    }


def client_options(endpoint_url: str | None, timeout_s: float, allow_http: bool | None) -> dict:
    """http:// endpoints (emulators, MinIO on a LAN) need ``allow_http``; it is implied by
    an http:// endpoint unless the caller says otherwise."""
    if allow_http is None:
        allow_http = bool(endpoint_url and endpoint_url.startswith("http://"))
    return {
        "allow_http": allow_http,
        "connect_timeout": timedelta(seconds=min(timeout_s, 10.0)),
        "timeout": timedelta(seconds=timeout_s),
    }


def _before(prefix: str) -> str | None:
    """A key below every key starting with ``prefix``, and above every other key obstore can
    hold below them (None for "")."""
    if not prefix:
        return None
    code = ord(prefix[-1]) - 1
    if 0xD800 <= code <= 0xDFFF:  # surrogates are no key's code points
        code = 0xD7FF
    if code < 0x20 or code == 0x7F:  # nor control characters (obstore refuses them in paths)
        return prefix[:-1] or None
    return prefix[:-1] + chr(code) + chr(MAX_CODE_POINT)


class ObjectStoreStorage:
    """The ``Storage`` protocol over one obstore store. Subclasses build ``self._store``
    and set ``scheme`` and ``self._container`` (what ``uri`` names)."""

    scheme: ClassVar[str] = ""
    can_sign: bool = True
    page_size: int = PAGE_SIZE
    # Characters a listing must not send in its query: obstore's S3 signer encodes them
    # unlike the URL it sends (" " as "+", "*", "~"), so servers refuse the signature.
    _query_unsafe: str = ""
    _store: Any
    _container: str

    def _translate(self, exc: Exception, key: str | None = None) -> StorageError:
        from obstore import exceptions as obx

        text = str(exc).split("\n\nDebug source:")[0]
        where = f"{self.scheme}://{self._container}" + (f"/{key}" if key else "")
        if isinstance(exc, FileNotFoundError | obx.NotFoundError):
            return ObjectNotFound(f"{where} is not there", details={"key": key})
        if isinstance(exc, obx.PermissionDeniedError | obx.UnauthenticatedError) or (
            _DENIED.search(text)
        ):
            return AccessDenied(
                f"{where}: the credentials were refused or lack a permission ({_tail(text)})"
            )
        if _UNREACHABLE.search(text):
            return Unreachable(f"{where}: the endpoint cannot be reached ({_tail(text)})")
        if _NO_CONTAINER.search(text):
            return ObjectNotFound(f"{self.scheme}://{self._container} does not exist")
        if isinstance(exc, obx.InvalidPathError | ValueError):
            return StorageError(
                f"{where}: a key tether cannot address ({_tail(text)})", code="invalid_object_key"
            )
        if isinstance(exc, obx.UnknownConfigurationKeyError):
            return InvalidConfig(f"{self.scheme}: {_tail(text)}")
        return StorageError(f"{where}: {_tail(text)}")

    def _check_key(self, key: str) -> None:
        """obstore would address another object for these (``a/`` is ``a``), or none."""
        if not key or key.startswith("/") or key.endswith("/") or "//" in key:
            raise InvalidConfig(
                f"{self.scheme}://{self._container}/{key}: a key tether cannot address "
                "(empty, or an empty path segment)",
                details={"key": key},
                code="invalid_object_key",
            )

    def list(
        self, prefix: str = "", *, start_after: str | None = None, recursive: bool = True
    ) -> Iterator[Sequence[ObjectInfo]]:
        import obstore

        parent = prefix[: prefix.rfind("/") + 1]
        offset = _before(prefix)
        if start_after is not None and (offset is None or start_after > offset):
            offset = start_after
        if self._query_unsafe:  # send only what is signed as sent; filter the rest here
            parent = _cut(parent, self._query_unsafe)
            parent = parent[: parent.rfind("/") + 1]
            if offset is not None:
                offset = _cut(offset, self._query_unsafe) or None
        parent = parent.rstrip("/")
        try:
            stream = obstore.list(
                self._store, parent or None, offset=offset, chunk_size=self.page_size
            )
            for chunk in stream:
                page: list[ObjectInfo] = []
                done = False
                for meta in chunk:
                    key = meta["path"]
                    if start_after is not None and key <= start_after:
                        continue
                    if not key.startswith(prefix):
                        if key > prefix:
                            done = True
                            break
                        continue
                    if recursive or direct_child(prefix, key):
                        page.append(_info(meta))
                if page:
                    yield page
                if done:
                    return
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

    def stat(self, key: str) -> ObjectInfo:
        import obstore

        self._check_key(key)
        try:
            return _info(obstore.head(self._store, key))
        except Exception as exc:
            raise self._translate(exc, key) from exc

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        import obstore

        self._check_key(key)
        if end is not None and end <= start:
            return
        options: dict[str, Any] = {}
        if end is not None:
            options["range"] = (start, end)
        elif start > 0:
            options["range"] = {"offset": start}
        try:
            result = obstore.get(self._store, key, options=options or None)  # type: ignore[arg-type]
            for chunk in result.stream(min_chunk_size=1 << 20):
                yield bytes(chunk)
        except Exception as exc:
            if options and _RANGE_PAST_END.search(str(exc)):
                return  # data[start:end] past the end: no bytes, not an error
            raise self._translate(exc, key) from exc

    def write(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        import obstore

        self._check_key(key)
        attributes = {"Content-Type": content_type} if content_type else None
        try:
            obstore.put(self._store, key, data, attributes=attributes)
        except Exception as exc:
            raise self._translate(exc, key) from exc

    def write_stream(
        self, key: str, chunks: Iterable[bytes], *, content_type: str | None = None
    ) -> None:
        """Up to ``STREAM_PART`` bytes: one PUT (so the ETag is the content's MD5 where the
        store makes it so, as S3 does). More: a multipart upload of ``STREAM_PART``-sized
        parts, at most ``STREAM_CONCURRENCY`` in flight (memory about their product); an
        error from ``chunks`` aborts it, leaving no object."""
        import obstore

        self._check_key(key)
        attributes = {"Content-Type": content_type} if content_type else None
        stream = iter(chunks)
        head: list[bytes] = []
        size = 0
        for chunk in stream:
            head.append(bytes(chunk))
            size += len(chunk)
            if size > STREAM_PART:
                break
        else:
            self.write(key, b"".join(head), content_type=content_type)
            return
        source = _Watched(itertools.chain(head, stream))
        try:
            obstore.put(
                self._store,
                key,
                source,
                attributes=attributes,
                use_multipart=True,
                chunk_size=STREAM_PART,
                max_concurrency=STREAM_CONCURRENCY,
            )
        except Exception as exc:
            if source.error is not None:  # the chunks' own error, not the store's
                raise source.error from None
            raise self._translate(exc, key) from exc

    def delete(self, key: str) -> None:
        import obstore

        self._check_key(key)
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            return
        except Exception as exc:
            error = self._translate(exc, key)
            if isinstance(error, ObjectNotFound) and error.details:  # the key, not the bucket
                return
            raise error from exc

    def sign(self, key: str, expires_in: timedelta) -> str | None:
        import obstore

        self._check_key(key)
        if not self.can_sign:
            return None
        try:
            url: str = obstore.sign(self._store, "GET", key, expires_in)
        except Exception as exc:
            raise self._translate(exc, key) from exc
        return url

    def uri(self, key: str) -> str:
        """``<scheme>://<bucket>/<key>`` with the key as it is, as Label Studio, the AWS CLI
        and gsutil write them: everything after the bucket's ``/`` is the key (spaces,
        ``%``, ``?`` and ``#`` included), so a task written by another tool and a synced row
        name one object the same way."""
        return f"{self.scheme}://{self._container}/{key}"


class _Watched:
    """An iterator of chunks that remembers the exception it raised (obstore wraps it)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.error: BaseException | None = None

    def __iter__(self) -> _Watched:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise


def _cut(text: str, unsafe: str) -> str:
    """``text`` up to its first character in ``unsafe``: a lower bound of it in key order."""
    for i, char in enumerate(text):
        if char in unsafe:
            return text[:i]
    return text


def _info(meta: Any) -> ObjectInfo:
    etag = meta.get("e_tag")
    return ObjectInfo(
        key=meta["path"],
        size=meta["size"],
        etag=etag.strip('"') if etag else None,
        modified=meta.get("last_modified"),
    )


def _tail(text: str, limit: int = 300) -> str:
    """The useful end of an obstore message, short."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
