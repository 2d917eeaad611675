"""Files in a folder under the operator's document root, with the standard library.

A key is a POSIX path relative to the folder (``path``); every key goes through the one path
guard (``tether.security.paths.resolve_under``). Refused as ``InvalidConfig``: keys that are
empty, absolute, end in ``/``, hold an empty, ``.`` or ``..`` segment, a backslash, NUL or
another control character. A key that leads out of the folder through a symlink is
``ObjectNotFound`` when read and ``InvalidConfig`` when written or deleted.

The listing is in key order (UTF-8 bytes, which is code-point order of ``str``): each folder
is read with ``os.scandir`` and its entries sorted by name, a sub-folder by its name plus
``/``, so ``a-b`` < ``a/b`` < ``a0`` exactly as the full keys sort. It streams: memory holds
the sorted entries of the folders on the current path only (bounded by the largest folder,
not by the store). Symlinks to files inside the folder are listed with their target's size
and time; symlinks to folders are not followed (no cycles, no duplicates); names that cannot
be keys (not UTF-8, control characters, backslashes) and tether's own in-flight write files
(``.tether-*.part``) are skipped.

ETag: ``f"{size}-{mtime_ns}"``. URI: Label Studio's ``/data/local-files/?d=<path under the
document root>``, percent-encoded as Label Studio does (``urllib.parse.quote``, ``/`` kept).
``sign`` returns None: tether serves local files itself.
"""

from __future__ import annotations

import os
import re
import stat as stat_mode
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, ClassVar
from urllib.parse import quote

from tether.security.paths import UnsafePath, resolve_under
from tether.storages.base import (
    PAGE_SIZE,
    AccessDenied,
    InvalidConfig,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    config_error,
)

URI_PREFIX = "/data/local-files/?d="
READ_CHUNK = 1024 * 1024
_PART_PREFIX, _PART_SUFFIX = ".tether-", ".part"
_BAD_TEXT = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_FILE, _DIR, _LINK = 0, 1, 2
_Entries = list[tuple[str, str, int]]  # (key, path, kind) of one folder, in key order


class LocalStorage:
    scheme: ClassVar[str] = "local-files"  # URIs start with URI_PREFIX

    def __init__(
        self, path: str, document_root: str | os.PathLike[str], *, page_size: int = PAGE_SIZE
    ) -> None:
        if page_size < 1:
            raise config_error("page_size must be at least 1", page_size=page_size)
        self.page_size = page_size
        if not isinstance(path, str) or not os.path.isabs(path):
            raise config_error("path must be an absolute folder path", path=path)
        try:
            doc_root = Path(document_root).resolve(strict=True)
        except OSError:
            raise config_error(
                "the local files document root does not exist", document_root=str(document_root)
            ) from None
        try:
            root = resolve_under(doc_root, path, allow_absolute=True)
        except UnsafePath as exc:
            raise config_error(
                f"path must be a folder inside the document root {doc_root}: {exc.message}",
                path=path,
            ) from None
        self.root = str(root)
        self.document_root = str(doc_root)
        relative = os.path.relpath(root, doc_root)
        self._uri_base = "" if relative == "." else relative + "/"

    # -- the protocol --------------------------------------------------------------------

    def list(
        self, prefix: str = "", *, start_after: str | None = None, recursive: bool = True
    ) -> Iterator[Sequence[ObjectInfo]]:
        head, sep, tail = prefix.rpartition("/")
        if head:
            _check_key(head)
        if _BAD_TEXT.search(tail):
            raise config_error("the prefix contains a backslash or a control character")
        self._require_root()
        folder = os.path.join(self.root, head) if head else self.root
        if head and os.path.realpath(folder) != folder:
            return iter(())  # through a symlink, or not there: nothing listed under it
        entries = self._walk(folder, head + sep, tail, recursive, start_after)
        return _pages(entries, self.page_size)

    def stat(self, key: str) -> ObjectInfo:
        real = self._follow(key)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise _not_found(key) from None
        except OSError as exc:
            raise _os_error(exc, key) from exc
        if not stat_mode.S_ISREG(st.st_mode):
            raise _not_found(key)
        return _info(key, st)

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise config_error("a read range needs 0 <= start <= end", start=start, end=end)
        real = self._follow(key)
        try:
            handle = open(real, "rb")  # noqa: SIM115 - closed by the chunk generator
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise _not_found(key) from None
        except OSError as exc:
            raise _os_error(exc, key) from exc
        if not stat_mode.S_ISREG(os.fstat(handle.fileno()).st_mode):
            handle.close()
            raise _not_found(key)
        return _chunks(handle, start, end)

    def write(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        folder, name = self._slot(key, create=True)
        try:
            fd, part = tempfile.mkstemp(dir=folder, prefix=_PART_PREFIX, suffix=_PART_SUFFIX)
        except OSError as exc:
            raise _os_error(exc, key) from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(part, os.path.join(folder, name))
        except IsADirectoryError:
            message = "the key names a folder; it cannot hold an object"
            raise config_error(message, key=key) from None
        except OSError as exc:
            raise _os_error(exc, key) from exc
        finally:
            with suppress(FileNotFoundError):
                os.unlink(part)

    def delete(self, key: str) -> None:
        try:
            folder, name = self._slot(key, create=False)
        except ObjectNotFound:
            return
        try:
            os.unlink(os.path.join(folder, name))  # a symlink itself, never its target
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            if os.path.isdir(os.path.join(folder, name)):
                return  # a folder is not an object
            raise _os_error(exc, key) from exc

    def sign(self, key: str, expires_in: timedelta) -> str | None:
        return None

    def uri(self, key: str) -> str:
        _check_key(key)
        return URI_PREFIX + quote(self._uri_base + key)

    # -- keys to paths -------------------------------------------------------------------

    def _require_root(self) -> None:
        if os.path.realpath(self.root) != self.root:
            raise InvalidConfig("the storage folder was replaced by a symlink", {"path": self.root})
        if not os.path.isdir(self.root):
            raise ObjectNotFound("the storage folder does not exist", {"path": self.root})

    def _follow(self, key: str) -> str:
        """The real path a key names, every symlink followed, inside the folder."""
        _check_key(key)
        self._require_root()
        try:
            real = str(resolve_under(self.root, key))
        except UnsafePath:
            raise _not_found(key, "the key leads outside the storage folder") from None
        except (RuntimeError, OSError):  # a symlink loop
            raise _not_found(key, "the key leads into a symlink loop") from None
        if not _inside(real, self.root):
            raise _not_found(key, "the key leads outside the storage folder")
        return real

    def _slot(self, key: str, *, create: bool) -> tuple[str, str]:
        """The real folder that holds the key's own name (which itself is not followed)."""
        _check_key(key)
        parent, _, name = key.rpartition("/")
        if create:
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise _os_error(exc, key) from exc
        self._require_root()
        try:
            folder = str(resolve_under(self.root, parent)) if parent else self.root
        except UnsafePath:
            raise config_error("the key leads outside the storage folder", key=key) from None
        except (RuntimeError, OSError):  # a symlink loop
            if create:
                raise config_error("the key leads into a symlink loop", key=key) from None
            raise _not_found(key, "the key leads into a symlink loop") from None
        if not _inside(folder, self.root):
            raise config_error("the key leads outside the storage folder", key=key)
        if create:
            try:
                os.makedirs(folder, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise config_error(
                    "a part of the key is a file; it cannot also be a folder", key=key
                ) from None
            except OSError as exc:
                raise _os_error(exc, key) from exc
        elif not os.path.isdir(folder):
            raise _not_found(key)
        return folder, name

    # -- the walk ------------------------------------------------------------------------

    def _walk(
        self, folder: str, key_prefix: str, name_prefix: str, recursive: bool, after: str | None
    ) -> Iterator[ObjectInfo]:
        """Objects under ``folder`` in key order; only names starting with ``name_prefix`` at
        the top. Not recursive: files at the top, plus the files of the one folder named
        exactly ``name_prefix`` (their rest after the prefix is ``/name``)."""
        stack = [iter(self._scan(folder, key_prefix, name_prefix))]
        exact = key_prefix + name_prefix
        while stack:
            for key, path, kind in stack[-1]:
                if kind == _DIR:
                    below = key + "/"
                    if after is not None and after >= below and not after.startswith(below):
                        continue  # every key in it sorts at or before start_after
                    if not recursive and (len(stack) > 1 or key != exact):
                        continue
                    stack.append(iter(self._scan(path, below, "")))
                    break
                if after is not None and key <= after:
                    continue
                info = self._entry_info(key, path, kind)
                if info is not None:
                    yield info
            else:
                stack.pop()

    def _scan(self, folder: str, key_prefix: str, name_prefix: str) -> _Entries:
        """One folder's (key, path, kind), sorted as full keys sort."""
        try:
            scanner = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _os_error(exc, key_prefix) from exc
        rows: list[tuple[str, str, str, int]] = []
        top = not key_prefix
        with scanner:
            for entry in scanner:
                name = entry.name
                if not name.startswith(name_prefix) or not _usable(name, top):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    rows.append((name + "/", key_prefix + name, entry.path, _DIR))
                elif entry.is_file(follow_symlinks=False):
                    rows.append((name, key_prefix + name, entry.path, _FILE))
                elif entry.is_symlink():
                    rows.append((name, key_prefix + name, entry.path, _LINK))
        rows.sort(key=_SORT)
        return [(key, path, kind) for _, key, path, kind in rows]

    def _entry_info(self, key: str, path: str, kind: int) -> ObjectInfo | None:
        if kind == _LINK:
            return self._link_info(key, path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None  # removed since the folder was read
        except OSError as exc:
            raise _os_error(exc, key) from exc
        return _info(key, st)

    def _link_info(self, key: str, path: str) -> ObjectInfo | None:
        """A symlink is listed when it leads to a regular file inside the folder."""
        try:
            real = os.path.realpath(path)
            if not _inside(real, self.root):
                return None
            st = os.stat(real)
        except OSError:  # dangling, a loop, or unreadable: not an object
            return None
        return _info(key, st) if stat_mode.S_ISREG(st.st_mode) else None


_SORT: Callable[[tuple[str, str, str, int]], str] = itemgetter(0)


def _usable(name: str, top: bool) -> bool:
    """Whether a directory entry's name can be (part of) a key."""
    if name.startswith(_PART_PREFIX) and name.endswith(_PART_SUFFIX):
        return False
    if _BAD_TEXT.search(name) or (top and _DRIVE.match(name)):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, held as surrogates
        return False
    return True


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise config_error("an object key must be a non-empty string", key=key)
    if key.startswith("/") or key.endswith("/"):
        raise config_error("a key is a relative path and does not end in '/'", key=key)
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise config_error("a key may not hold an empty, '.' or '..' segment", key=key)
    if _BAD_TEXT.search(key) or _DRIVE.match(key):
        raise config_error("a key may not hold a backslash, a control character or a drive")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise config_error("a key must be valid Unicode text") from None


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip("/") + "/")


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=f"{st.st_size}-{st.st_mtime_ns}",
        modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
    )


def _pages(entries: Iterator[ObjectInfo], size: int) -> Iterator[list[ObjectInfo]]:
    page: list[ObjectInfo] = []
    for info in entries:
        page.append(info)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _chunks(handle: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    with handle as file:
        file.seek(start)
        left = None if end is None else end - start
        while left is None or left > 0:
            chunk = file.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def _not_found(key: str, message: str = "no such object") -> ObjectNotFound:
    return ObjectNotFound(f"{message}: {key!r}", {"key": key})


def _os_error(exc: OSError, key: str) -> StorageError:
    if isinstance(exc, PermissionError):
        return AccessDenied(f"the file system refused access to {key!r}", {"key": key})
    return StorageError(f"the file system failed on {key!r}: {exc.strerror}", {"key": key})
