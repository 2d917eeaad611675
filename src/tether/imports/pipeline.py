"""An import's items, read and checked a chunk at a time.

Reading and checking rows is Python work; writing them is database work. For a large upload
the reading and checking run in a child process (``python -m tether.imports.pipeline``) that
stays one chunk ahead of the writer, so the two overlap on two CPUs instead of taking turns
on one GIL (threads do not help here: the sqlite3 driver needs the GIL for every row it
binds). Small uploads are read in the job's own thread: a child costs about half a second.

Both ways run the same code (``_here``) and yield the same chunks; the child sends each one
as a length-prefixed frame on its standard output (chunks as plain tuples in ``marshal``, the
parent being the same Python), and an exception as one last frame.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Generator
from contextlib import suppress
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import IO, Any, cast

from tether.catalog.metadata_schema import Schema
from tether.catalog.rows import NormalRow
from tether.imports import readers, sniff
from tether.imports.collector import collector_paused
from tether.jobs.service import ItemError

# Uploads at least this large are read in a child process.
CHILD_MIN_BYTES = 16 * 1024 * 1024
CHECK_BATCH = 1000  # items parsed and checked at a time
# The most chunks the job's thread reads itself while the child process starts.
HEAD_START_CHUNKS = 8
# A frame: body size, what the body is (a chunk in marshal, anything else in pickle), body.
_FRAME = struct.Struct("!QB")
_CHUNK, _OTHER, _READY = 1, 2, 3
_MARSHAL_VERSION = 2  # without the back-references of later versions: faster to write

Validate = Callable[
    [list[readers.Item], Schema, str | None], tuple[list[tuple[int, NormalRow]], list[ItemError]]
]


@dataclass
class Source:
    path: Path
    container: str
    flavor: str | None  # forced, else None (each item tells)
    field_names: frozenset[str]
    skip: int = 0  # items already handled (a resumed job)


@dataclass
class Chunk:
    good: list[tuple[int, NormalRow]]
    errors: list[ItemError]
    done: int  # every item before this index is handled
    flavor: str | None  # the first item's that tells


@dataclass
class _Failure:
    error: BaseException


@dataclass
class _End:
    pass


def chunks(
    source: Source,
    schema: Schema,
    media_type: str | None,
    chunk_rows: int,
    validate: Validate,
    in_child: bool | None = None,
) -> Generator[Chunk, None, None]:
    """Checked chunks in item order. ``in_child`` defaults to: the upload is large.
    The child process starts here, so it gets ready while the caller does other things
    (counting the items) before asking for the first chunk. Closing the iterator stops it."""
    if in_child is None:
        in_child = source.path.stat().st_size >= CHILD_MIN_BYTES
    args = (source, schema, media_type, chunk_rows, validate)
    if not in_child:
        return _here(*args)
    started = _from_child(*args)
    next(started)  # runs up to the child's start: closing the iterator now stops the child
    return cast(Generator[Chunk, None, None], started)


def _here(
    source: Source, schema: Schema, media_type: str | None, chunk_rows: int, validate: Validate
) -> Generator[Chunk, None, None]:
    items = readers.read(
        source.path, source.container, source.field_names, source.flavor, source.skip
    )
    items = (item for item in items if item.index >= source.skip)
    # Items are checked a batch at a time as they are read, so a chunk's parsed items (much
    # bigger than its checked rows) are never all in memory at once.
    batch = min(chunk_rows, CHECK_BATCH)
    while True:
        good: list[tuple[int, NormalRow]] = []
        errors: list[ItemError] = []
        flavor, last, count = None, -1, 0
        with collector_paused():
            while count < chunk_rows and (
                part := list(islice(items, min(batch, chunk_rows - count)))
            ):
                checked, failed = validate(part, schema, media_type)
                good += checked
                errors += failed
                flavor = flavor or next((item.flavor for item in part if item.flavor), None)
                last, count = part[-1].index, count + len(part)
        if not count:
            return
        yield Chunk(good, errors, last + 1, flavor)


# --- the child process -----------------------------------------------------------------------


def _chunk_to_plain(chunk: Chunk) -> tuple[Any, ...]:
    """A chunk as tuples of strings, numbers and None, which ``marshal`` writes about four
    times as fast as ``pickle`` writes the objects (no memo of every string)."""
    return (
        [
            (
                i,
                (
                    r.global_key,
                    r.external_id,
                    r.media_type,
                    r.row_data,
                    r.media_attributes,
                    r.metadata,
                    r.metadata_values,
                    r.attachments,
                    r.extra,
                ),
            )
            for i, r in chunk.good
        ],
        [(e.index, e.code, e.message, e.global_key, e.external_id) for e in chunk.errors],
        chunk.done,
        chunk.flavor,
    )


def _chunk_from_plain(plain: tuple[Any, ...]) -> Chunk:
    good, errors, done, flavor = plain
    return Chunk(
        [(i, NormalRow(*fields)) for i, fields in good],
        [ItemError(*fields) for fields in errors],
        done,
        flavor,
    )


def _from_child(
    source: Source, schema: Schema, media_type: str | None, chunk_rows: int, validate: Validate
) -> Generator[Chunk | None, None, None]:
    """None once the child process is started, then the chunks, from the child. The child
    takes a while to start (a Python with tether's modules), so the job's thread reads the
    first chunks itself until the child says it is ready, plus one more while the child
    starts on the items after it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether.imports.pipeline"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdout = proc.stdout
    # A thread receives the next frame while the job writes this chunk (on PostgreSQL the
    # writing is mostly waiting for the server); the job's thread decodes it when it asks
    # for it. A decoded chunk is many objects the collector tracks, and the job keeps the
    # collector paused from decoding a chunk until it is written and dropped (see
    # ``runner``): decoded in another thread, it would be traversed by the collections that
    # run while that thread's pause and the job's do not overlap.
    frames: queue.Queue[Any] = queue.Queue(maxsize=1)
    ready = threading.Event()
    stop = threading.Event()

    def receive() -> None:
        frame: Any = None
        while not stop.is_set():
            try:
                frame = _read_raw_frame(stdout)
            except BaseException as exc:  # a broken frame: hand the error over
                frame = _Failure(exc)
            if isinstance(frame, tuple) and frame[0] == _READY:
                ready.set()
                continue
            ready.set()  # (a child that died before it was ready: the frames loop says so)
            while not stop.is_set():
                try:
                    frames.put(frame, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not (isinstance(frame, tuple) and frame[0] == _CHUNK):
                return

    receiver = threading.Thread(target=receive, name="tether-import-receiver", daemon=True)
    receiver.start()
    try:
        yield None
        skip = yield from _head_start(source, schema, media_type, chunk_rows, validate, ready)
        if skip is None:
            return  # the job's thread read every item
        args = (replace(source, skip=skip), schema, media_type, chunk_rows, validate)
        with suppress(BrokenPipeError), proc.stdin:
            proc.stdin.write(pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL))
        while True:
            frame = frames.get()
            try:
                message = _decode(frame) if isinstance(frame, tuple) else frame
            except BaseException as exc:
                message = _Failure(exc)
            if message is None:
                proc.wait()
                raise RuntimeError(f"the import reader process ended early ({proc.returncode})")
            if isinstance(message, _Failure):
                raise message.error
            if isinstance(message, _End):
                return
            yield message
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()  # the receiver's read ends at once
        if receiver.is_alive():
            receiver.join()
        stdout.close()
        with suppress(BrokenPipeError):
            proc.stdin.close()
        proc.wait()


def _head_start(
    source: Source,
    schema: Schema,
    media_type: str | None,
    chunk_rows: int,
    validate: Validate,
    ready: threading.Event,
) -> Generator[Chunk, None, int | None]:
    """Chunks read in the job's thread until the child is ready (at most
    ``HEAD_START_CHUNKS``); returns the index the child goes on from, or None at the end of
    the items. A chunk holds ``chunk_rows`` items unless it is the last, so the chunk read
    while the child starts ends where the child begins."""
    here = _here(source, schema, media_type, chunk_rows, validate)
    try:
        done, count = source.skip, 0
        while count < HEAD_START_CHUNKS - 1 and not ready.is_set():
            chunk = next(here, None)
            if chunk is None:
                return None
            done, count = chunk.done, count + 1
            yield chunk
            del chunk
        if count >= HEAD_START_CHUNKS:
            ready.wait()
            return done
        ready.wait()
        # The child is ready: it starts after the chunk read here meanwhile.
        return (yield from _one_more(here, done + chunk_rows))
    finally:
        here.close()


def _one_more(here: Generator[Chunk, None, None], skip: int) -> Generator[Chunk, None, int]:
    chunk = next(here, None)
    if chunk is not None:
        if chunk.done != skip and next(here, None) is not None:
            raise RuntimeError(f"a chunk ended at item {chunk.done}, not at {skip}")
        yield chunk
    return skip


def _read_raw_frame(stream: IO[bytes]) -> tuple[int, bytes] | None:
    """The next frame's kind and body, not decoded; None when the stream ends first."""
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    size, kind = _FRAME.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return kind, body


def _decode(frame: tuple[int, bytes]) -> Any:
    kind, body = frame
    with collector_paused():
        if kind == _CHUNK:
            return _chunk_from_plain(marshal.loads(body))
        return pickle.loads(body)


def _write_frame(stream: IO[bytes], message: Any) -> None:
    if isinstance(message, Chunk):
        kind, body = _CHUNK, marshal.dumps(_chunk_to_plain(message), _MARSHAL_VERSION)
    else:
        kind, body = _OTHER, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(body), kind))
    stream.write(body)
    stream.flush()


def _child() -> None:
    # The child makes no reference cycles worth collecting, and with the collector on between
    # chunks its full passes walked the chunk just sent (a tenth of the child's time).
    gc.disable()
    # Frames go to the real standard output; anything else printed goes to standard error.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    out.write(_FRAME.pack(0, _READY))
    out.flush()
    try:
        args = pickle.load(sys.stdin.buffer)
    except EOFError:
        return  # the job's thread read every item itself
    try:
        for chunk in _here(*args):
            _write_frame(out, chunk)
    except BrokenPipeError:
        return  # the job stopped reading (canceled, or it failed)
    except BaseException as exc:
        if not isinstance(exc, sniff.FileError):
            traceback.print_exc()
        try:
            _write_frame(out, _Failure(exc))
        except Exception:
            _write_frame(out, _Failure(RuntimeError(f"{type(exc).__name__}: {exc}")))
        return
    _write_frame(out, _End())


if __name__ == "__main__":
    # Run the module's own copy, so what is pickled names tether.imports.pipeline, not __main__.
    from tether.imports.pipeline import _child as child

    child()
