"""String values in one Redis database, with redis-py (values are task JSON strings).

Keys are full Redis keys (``ObjectInfo.key`` includes the prefix, as S3 keys do); ``path``
is the storage's key prefix and bounds what it sees: a listing yields only keys under both
``path`` and the ``prefix`` asked for, and a key outside ``path`` is ``InvalidConfig``.

Listing: SCAN is unordered, so ``list`` first collects every matching key and sorts them by
their bytes; memory is bounded by the number of keys, not their values: about N x (key
length + ~150 bytes), ~15 MB at 100,000 short keys. The SCAN runs inside Redis as a small
script that hashes each value there (``redis.sha1hex``) and answers one packed string per
batch of keys: values never cross the network. A server that refuses scripts (an ACL, some
managed services) gets plain SCAN, then one MGET per page, values hashed here and dropped.
Either way the etag is the value's SHA-1 in hex (``stat`` gives the same). Keys that do not
hold a string (hashes, lists, ...), vanish meanwhile, or are not UTF-8 are skipped. Redis
keeps no modification time: ``modified`` is None. ``size`` is the value's length.

URI: ``redis://<db>/<key, percent-encoded with '/' kept>`` -- the db number where S3 puts
the bucket; the storage connection says which server. ``sign`` returns None.

Errors: a refused password -> AccessDenied, a missing ACL permission -> AccessDenied, no
connection or a timeout -> Unreachable, a db number the server does not have ->
InvalidConfig, any other Redis error -> StorageError.
"""

from __future__ import annotations

import builtins
import hashlib
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from operator import itemgetter
from typing import Any, ClassVar
from urllib.parse import quote

from tether.storages.base import (
    PAGE_SIZE,
    AccessDenied,
    InvalidConfig,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    Unreachable,
    UploadsNotSupported,
    config_error,
    direct_child,
    make_info,
)

SCAN_COUNT = 1000  # keys asked of each SCAN call
# One SCAN step inside Redis: per string value its key's and its own length (4 bytes each,
# big-endian), the value's SHA-1 in hex, then the key -- all packed into one string.
_SCAN_SCRIPT = """
local scan = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local out = {}
for _, key in ipairs(scan[2]) do
  local value = redis.pcall('GET', key)
  if type(value) == 'string' then
    out[#out + 1] = struct.pack('>I4I4', #key, #value) .. redis.sha1hex(value) .. key
  end
end
return {scan[1], table.concat(out)}
"""
_HEADER = 48  # 4 + 4 + 40
_LENGTHS = struct.Struct(">II").unpack_from
_first = itemgetter(0)
_Rows = list[tuple[bytes, int, bytes]]  # (key, value size, value SHA-1 in hex)


class RedisStorage:
    scheme: ClassVar[str] = "redis"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        password: str | None = None,
        db: int = 0,
        path: str = "",
        *,
        page_size: int = PAGE_SIZE,
        timeout_seconds: float = 10.0,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if not isinstance(port, int) or not 0 < port < 65536:
            raise config_error("port must be a number from 1 to 65535", port=port)
        if not isinstance(db, int) or db < 0:
            raise config_error("db must be a number from 0 up", db=db)
        if not isinstance(path, str):
            raise config_error("path (the key prefix) must be text")
        if page_size < 1:
            raise config_error("page_size must be at least 1", page_size=page_size)
        self.host, self.port, self.db, self.path = host, port, db, path
        self.page_size = page_size
        self._client = client = redis.Redis(
            host=host,
            port=port,
            db=db,
            password=password or None,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 1),  # every command here is safe to repeat once
        )
        self._scan_script = client.register_script(_SCAN_SCRIPT)

    def list(
        self, prefix: str = "", *, start_after: str | None = None, recursive: bool = True
    ) -> Iterator[Sequence[ObjectInfo]]:
        scope = _narrower(self.path, prefix)
        if scope is None:
            return iter(())
        after = None if start_after is None else start_after.encode()
        pattern = _glob_escape(scope) + b"*"
        rows = self._hashed_scan(pattern)
        if rows is None:  # no scripting allowed here: keys now, values page by page
            with self._errors():
                found = self._client.scan_iter(match=pattern, count=SCAN_COUNT)
                keys = [key for key in found if after is None or key > after]
            keys.sort()
            if not recursive:
                keys = [key for key in keys if _direct(prefix, key)]
            return self._pages(keys)
        if after is not None:
            rows = [row for row in rows if row[0] > after]
        rows.sort(key=_first)
        if not recursive:
            rows = [row for row in rows if _direct(prefix, row[0])]
        return _hashed_pages(rows, self.page_size)

    def stat(self, key: str) -> ObjectInfo:
        return _info(key, self._get(key))

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise config_error("a read range needs 0 <= start <= end", start=start, end=end)
        if start == 0 and end is None:
            return iter([self._get(key)])
        if end == start:
            self._get_range(key, 0, 0)  # only that it exists
            return iter([b""])
        # GETRANGE reads only the range (its end is inclusive; -1 is the last byte).
        return iter([self._get_range(key, start, -1 if end is None else end - 1)])

    def read_many(self, keys: Sequence[str]) -> builtins.list[bytes | None]:
        for key in keys:
            self._check_key(key)
        if not keys:
            return []
        with self._errors():
            values = self._client.mget([key.encode() for key in keys])
        return values  # type: ignore[return-value]  # bytes or None: decode_responses is off

    def write(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        self._check_key(key)
        with self._errors():
            self._client.set(key.encode(), bytes(data))

    def write_stream(
        self, key: str, chunks: Iterable[bytes], *, content_type: str | None = None
    ) -> None:
        """Refused: a Redis storage holds task JSON values, not files to upload."""
        raise UploadsNotSupported(
            "a redis storage holds task JSON strings, not files: upload files to an s3, gcs, "
            "azure_blob or local storage (or to tether's own, by naming no storage)",
            {"key": key},
        )

    def delete(self, key: str) -> None:
        self._check_key(key)
        with self._errors():
            self._client.delete(key.encode())

    def sign(self, key: str, expires_in: timedelta) -> str | None:
        return None

    def uri(self, key: str) -> str:
        self._check_key(key)
        return f"redis://{self.db}/{quote(key, safe='/')}"

    def close(self) -> None:
        self._client.close()

    # -- helpers ------------------------------------------------------------------------

    def _hashed_scan(self, pattern: bytes) -> _Rows | None:
        """(key, size, sha1 hex) of every string value matching ``pattern``: SCAN run inside
        Redis by a script that hashes each value there and answers one packed string per
        batch (values never cross the network; one reply to parse, not a key each). None
        when the server refuses scripts (an ACL, a managed service): the caller falls back
        to SCAN + MGET."""
        from redis import exceptions as rex

        rows: _Rows = []
        add, lengths, cursor = rows.append, _LENGTHS, b"0"
        with self._errors():
            try:
                while True:
                    cursor, packed = self._scan_script(args=[cursor, pattern, SCAN_COUNT])
                    at, end = 0, len(packed)
                    while at < end:
                        key_size, size = lengths(packed, at)
                        head = at + _HEADER
                        add((packed[head : head + key_size], size, packed[at + 8 : head]))
                        at = head + key_size
                    if cursor in (b"0", 0):
                        return rows
            except rex.ResponseError as exc:  # NOPERM, unknown command, scripts disabled
                if str(exc).startswith("WRONGTYPE"):
                    raise
                return None

    def _pages(self, keys: Sequence[bytes]) -> Iterator[Sequence[ObjectInfo]]:
        for at in range(0, len(keys), self.page_size):
            batch = keys[at : at + self.page_size]
            with self._errors():
                values = self._client.mget(batch)
            page: list[ObjectInfo] = []
            for key, value in zip(batch, values, strict=True):
                if value is None:
                    continue  # gone since the SCAN, or not a string value
                try:
                    page.append(_info(key.decode("utf-8"), value))
                except UnicodeDecodeError:
                    continue  # a key that is not text cannot be an object key
            if page:
                yield page

    def _get(self, key: str) -> bytes:
        self._check_key(key)
        with self._errors():
            value = self._client.get(key.encode())
        if value is None:
            raise ObjectNotFound(f"no object {key!r}", {"key": key})
        return value  # type: ignore[return-value]  # bytes: decode_responses is off

    def _get_range(self, key: str, first: int, last: int) -> bytes:
        """Bytes ``first``..``last`` (inclusive) of the value; ObjectNotFound if none. One
        round trip: EXISTS and GETRANGE in a pipeline (GETRANGE alone cannot tell a missing
        key from an empty range)."""
        self._check_key(key)
        with self._errors():
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(key.encode())
            pipe.getrange(key.encode(), first, last)
            found, value = pipe.execute()
        if not found:
            raise ObjectNotFound(f"no object {key!r}", {"key": key})
        return value  # bytes: decode_responses is off

    def _check_key(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise config_error("an object key must be a non-empty string", key=key)
        if not key.startswith(self.path):
            raise config_error(
                "the key is outside the storage's key prefix", key=key, path=self.path
            )
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise config_error("a key must be valid Unicode text") from None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate redis-py's errors into tether's (the password never appears)."""
        from redis import exceptions as rex

        where = f"Redis at {self.host}:{self.port} db {self.db}"
        try:
            yield
        except rex.AuthenticationError as exc:
            raise AccessDenied(f"{where} refused the password", {"host": self.host}) from exc
        except (rex.ConnectionError, rex.TimeoutError) as exc:
            raise Unreachable(f"cannot reach {where}: {exc}", {"host": self.host}) from exc
        except rex.NoPermissionError as exc:
            raise AccessDenied(f"{where} denied a command: {exc}", {"host": self.host}) from exc
        except rex.ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):  # a hash, a list...: not an object
                raise ObjectNotFound(f"{where}: the key does not hold a string") from exc
            if "DB index" in str(exc):
                raise InvalidConfig(f"{where} does not exist: {exc}", {"db": self.db}) from exc
            raise StorageError(f"{where} failed: {exc}", {"host": self.host}) from exc
        except rex.RedisError as exc:
            raise StorageError(f"{where} failed: {exc}", {"host": self.host}) from exc


def _narrower(path: str, prefix: str) -> bytes | None:
    """The one prefix meaning both; None when no key can start with both."""
    if prefix.startswith(path):
        return prefix.encode()
    if path.startswith(prefix):
        return path.encode()
    return None


def _glob_escape(text: bytes) -> bytes:
    out = bytearray()
    for byte in text:
        if byte in b"*?[]\\":
            out.append(0x5C)
        out.append(byte)
    return bytes(out)


def _direct(prefix: str, key: bytes) -> bool:
    return _utf8(key) and direct_child(prefix, key.decode("utf-8"))


def _utf8(key: bytes) -> bool:
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _info(key: str, value: Any) -> ObjectInfo:
    """The etag is the value's SHA-1 (what Redis's own ``redis.sha1hex`` gives the script)."""
    return make_info(key, len(value), hashlib.sha1(value, usedforsecurity=False).hexdigest(), None)


def _hashed_pages(rows: _Rows, size: int) -> Iterator[list[ObjectInfo]]:
    info_of = make_info
    for at in range(0, len(rows), size):
        page = []
        for key, length, sha in rows[at : at + size]:
            try:
                page.append(info_of(key.decode("utf-8"), length, sha.decode("ascii"), None))
            except UnicodeDecodeError:
                continue  # a key that is not text cannot be an object key
        if page:
            yield page
