"""Files in a folder under the operator's document root, with the standard library.

A key is a POSIX path relative to the folder (``path``); every key goes through the one path
guard (``tether.security.paths.resolve_under``). Refused as ``InvalidConfig``: keys that are
empty, absolute, end in ``/``, hold an empty, ``.`` or ``..`` segment, a backslash, NUL or
another control character. A key that leads out of the folder through a symlink is
``ObjectNotFound`` when read and ``InvalidConfig`` when written or deleted.

The listing is in key order (UTF-8 bytes, which is code-point order of ``str``): each folder
is opened without following symlinks, its names read (``os.listdir``) and ``lstat``-ed
relative to it, then sorted by name, a sub-folder by its name plus ``/``, so ``a-b`` <
``a/b`` < ``a0`` exactly as the full keys sort. It streams, depth first: memory holds the
sorted entries of the folders on the current path only (bounded by the largest folder, not
by the store). Symlinks to files inside the folder are listed with their target's size and
time; symlinks to folders are not walked (no cycles, no duplicates; ``stat`` and ``read``
do follow them while they stay inside); names that cannot be keys (not UTF-8, control
characters, backslashes) and tether's own in-flight write files (``.tether-*.part``; writes
go to one and are renamed into place) are skipped.

ETag: ``f"{size}-{mtime_ns}"``; ``modified``: the mtime to the whole second (as S3 gives it;
the etag keeps the nanoseconds). URI: Label Studio's ``/data/local-files/?d=<path under the
document root>``, percent-encoded as Label Studio does (``urllib.parse.quote``, ``/`` kept).
``sign`` returns None: tether serves local files itself.
"""

from __future__ import annotations

import errno
import os
import re
import stat as stat_mode
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, ClassVar
from urllib.parse import quote, unquote

from tether.security.paths import UnsafePath, resolve_under
from tether.storages.base import (
    PAGE_SIZE,
    AccessDenied,
    InvalidConfig,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    config_error,
    make_info,
)

URI_PREFIX = "/data/local-files/?d="
UPLOAD_URI_PREFIX = "/data/upload/"  # the URIs of ManagedLocalStorage
READ_CHUNK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_EPOCH = datetime.fromtimestamp(0, UTC)
_Page = list[ObjectInfo]
_KIND, _REGULAR = stat_mode.S_IFMT(0o177777), stat_mode.S_IFREG
_FOLDER, _SYMLINK = stat_mode.S_IFDIR, stat_mode.S_IFLNK
_PART_PREFIX, _PART_SUFFIX = ".tether-", ".part"
_BAD_TEXT = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")


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
        return self._walk(folder, head + sep, tail, recursive, start_after)

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
        self.write_stream(key, (data,), content_type=content_type)

    def write_stream(
        self, key: str, chunks: Iterable[bytes], *, content_type: str | None = None
    ) -> None:
        """Into a ``.tether-*.part`` file beside the key's place, renamed into it once the
        last chunk is written (and removed if anything fails before)."""
        folder, name = self._slot(key, create=True)
        try:
            fd, part = tempfile.mkstemp(dir=folder, prefix=_PART_PREFIX, suffix=_PART_SUFFIX)
        except OSError as exc:
            raise _os_error(exc, key) from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            os.replace(part, os.path.join(folder, name))
        except BaseException as exc:
            with suppress(FileNotFoundError):
                os.unlink(part)
            if isinstance(exc, IsADirectoryError):
                message = "the key names a folder; it cannot hold an object"
                raise config_error(message, key=key) from None
            if isinstance(exc, OSError):
                raise _os_error(exc, key) from exc
            raise

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
        if create and not os.path.isdir(self.root):
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
        if folder == self.root or os.path.isdir(folder):  # (the root was just checked)
            return folder, name
        if not create:
            raise _not_found(key)
        try:
            os.makedirs(folder, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise config_error(
                "a part of the key is a file; it cannot also be a folder", key=key
            ) from None
        except OSError as exc:
            raise _os_error(exc, key) from exc
        return folder, name

    # -- the walk ------------------------------------------------------------------------

    def _walk(
        self, folder: str, key_prefix: str, name_prefix: str, recursive: bool, after: str | None
    ) -> Iterator[_Page]:
        """Pages of the objects under ``folder`` in key order; at the top only names starting
        with ``name_prefix``. Not recursive: files at the top, plus the files of the one
        folder named exactly ``name_prefix`` (their rest after the prefix is ``/name``).

        One tight loop, depth first over a stack of sorted folders: per file one ``lstat``
        and one ``ObjectInfo`` (this is the hot path of every local sync)."""
        size, exact = self.page_size, key_prefix + name_prefix + "/"
        page: list[ObjectInfo] = []
        stack = [_Folder(folder, *_read_folder(folder, key_prefix, name_prefix, self.root))]
        while stack:
            top = stack[-1]
            items, at, count, deeper = top.items, top.at, len(top.items), None
            if top.leaf and after is None:  # only objects: whole slices, no look at each
                while at < count:
                    take = items[at : at + size - len(page)]
                    page += take  # type: ignore[arg-type]
                    at += len(take)
                    if len(page) == size:
                        yield page
                        page = []
            while at < count:
                item = items[at]
                at += 1
                if item.__class__ is str:  # a sub-folder: its keys' prefix
                    if after is not None and after >= item and not after.startswith(item):
                        continue  # every key in it sorts at or before start_after
                    if recursive or (len(stack) == 1 and item == exact):
                        deeper = item
                        break
                    continue
                if after is not None and item.key <= after:  # type: ignore[union-attr]
                    continue
                page.append(item)  # type: ignore[arg-type]
                if len(page) == size:
                    yield page
                    page = []
            top.at = at
            if deeper is None:
                stack.pop()
            else:
                path = os.path.join(self.root, deeper)
                stack.append(_Folder(path, *_read_folder(path, deeper, "", self.root)))
        if page:
            yield page


class ManagedLocalStorage(LocalStorage):
    """A folder tether owns under its data dir (``<data_dir>/assets/org-<id>``), where files
    uploaded to an organization without a storage of its own go.

    It is a ``LocalStorage`` in all but its URIs: ``/data/upload/<key, percent-encoded as
    Label Studio does>`` (the form of Label Studio's own uploads), never the
    ``/data/local-files/?d=`` form, which names files under the operator's document root --
    another folder, with its own switch (``TETHER_LOCAL_FILES_SERVING_ENABLED``) that this
    one does not need. A URI names a key of the organization's managed storage: resolving
    one is ``key_of(uri)`` and a read of that key through it."""

    scheme: ClassVar[str] = "upload"

    def uri(self, key: str) -> str:
        _check_key(key)
        return UPLOAD_URI_PREFIX + quote(key)

    @staticmethod
    def key_of(uri: str) -> str | None:
        """The key a ``/data/upload/...`` URI names (None for any other URI)."""
        if not uri.startswith(UPLOAD_URI_PREFIX):
            return None
        try:
            key = unquote(uri[len(UPLOAD_URI_PREFIX) :], errors="strict")
            _check_key(key)
        except (UnicodeDecodeError, InvalidConfig):
            return None
        return key


@dataclass(slots=True)
class _Folder:
    path: str
    items: list[ObjectInfo | str]  # in key order; a sub-folder as its key prefix "a/b/"
    leaf: bool  # no sub-folder among the items
    at: int = 0  # the next item to look at


def _read_folder(
    path: str, key_prefix: str, name_prefix: str, root: str
) -> tuple[list[ObjectInfo | str], bool]:
    """One folder's objects and sub-folders, sorted as full keys sort (a folder as
    ``name/``), and whether it has no sub-folder. One ``lstat`` per name, relative to the
    folder opened without following a symlink; it tells files, folders and symlinks apart."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return [], True
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink since its parent was read
            return [], True
        raise _os_error(exc, key_prefix) from exc
    try:
        names = os.listdir(fd)
        if name_prefix:
            names = [name for name in names if name.startswith(name_prefix)]
        if not key_prefix or not _all_usable(names):
            names = [name for name in names if _usable(name, not key_prefix)]
        names.sort()  # key order for files; folders are put in place after
        items, folders = _stat_names(fd, path, key_prefix, names, root)
    except OSError as exc:
        raise _os_error(exc, key_prefix) from exc
    finally:
        os.close(fd)
    if not folders:
        return items, True
    items += folders
    items.sort(key=_sort_key)
    return items, False


def _stat_names(
    fd: int, path: str, key_prefix: str, names: list[str], root: str
) -> tuple[list[ObjectInfo | str], list[str]]:
    """The hot loop of every local listing: ``make_info`` inlined, one datetime a second."""
    items: list[ObjectInfo | str] = []
    folders: list[str] = []
    add, lstat, info_of = items.append, os.lstat, make_info
    last, when = -1, _EPOCH
    for name in names:
        try:
            st = lstat(name, dir_fd=fd)
        except FileNotFoundError:
            continue  # removed since the folder was read
        kind = st.st_mode & _KIND
        if kind == _REGULAR:
            length, ns = st.st_size, st.st_mtime_ns
            second = ns // 1_000_000_000
            if second != last:  # files written together share their second
                last, when = second, _from_second(second)
            add(info_of(key_prefix + name, length, f"{length}-{ns}", when))
        elif kind == _FOLDER:
            folders.append(key_prefix + name + "/")
        elif kind == _SYMLINK:
            info = _link_info(key_prefix + name, os.path.join(path, name), root)
            if info is not None:
                add(info)
    return items, folders


def _sort_key(item: ObjectInfo | str) -> str:
    return item if isinstance(item, str) else item.key


def _all_usable(names: list[str]) -> bool:
    """The quick check of a whole folder (one regex over all names) before name by name."""
    joined = "/".join(names)
    if _PART_PREFIX in joined or _BAD_TEXT.search(joined):
        return False
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _link_info(key: str, path: str, root: str) -> ObjectInfo | None:
    """A symlink is listed when it leads to a regular file inside the folder."""
    try:
        real = os.path.realpath(path)
        if not _inside(real, root):
            return None
        st = os.stat(real)
    except OSError:  # dangling, a loop, or unreadable: not an object
        return None
    return _info(key, st) if stat_mode.S_ISREG(st.st_mode) else None


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


_BAD_SEGMENTS = frozenset(("", ".", ".."))  # what no segment of a key may be


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise config_error("an object key must be a non-empty string", key=key)
    if key.startswith("/") or key.endswith("/"):
        raise config_error("a key is a relative path and does not end in '/'", key=key)
    if not _BAD_SEGMENTS.isdisjoint(key.split("/")):
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
    size, ns = st.st_size, st.st_mtime_ns
    return make_info(key, size, f"{size}-{ns}", _from_second(ns // 1_000_000_000))


def _from_second(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


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
