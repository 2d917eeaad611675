"""Reading a project export (``GET /projects/{id}/export``): task dicts as they stream, or
the answer's bytes into a file, checked against the task count the server announced."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import ijson
import orjson

from tether.sdk._errors import TetherAPIError, raise_for_answer

TASKS_HEADER = "X-Tether-Export-Tasks"  # how many tasks an export holds
STREAMED = ("json", "ndjson")
CONVERTED = ("coco", "yolo", "voc")
Progress = Callable[[int, int | None], None]


def tasks(http: httpx.Client, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The tasks of an export in ``params["format"]`` (json or ndjson), one by one."""
    with http.stream("GET", path, params=params) as response:
        announced = _opened(response)
        seen = 0
        if params["format"] == "ndjson":
            items: Iterator[Any] = (orjson.loads(line) for line in response.iter_lines() if line)
        else:
            items = ijson.items(_Reader(response.iter_bytes()), "item", use_float=True)
        for item in items:
            seen += 1
            yield item
        _check(seen, announced)


def write(
    http: httpx.Client,
    path: str,
    params: dict[str, Any],
    target: str | os.PathLike[str] | IO[bytes],
    on_progress: Progress | None = None,
) -> int:
    """Write the answer's bytes as they come to ``target`` (a path: through a temporary file
    beside it, renamed when complete, so a failed export leaves no partial file; or an open
    binary file). Returns the number of tasks; ``on_progress(done, total)`` in tasks."""
    if not isinstance(target, str | os.PathLike):
        return _copy(http, path, params, target, on_progress)
    final = Path(target)
    partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as sink:
            count = _copy(http, path, params, sink, on_progress)
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _copy(
    http: httpx.Client,
    path: str,
    params: dict[str, Any],
    sink: IO[bytes],
    on_progress: Progress | None,
) -> int:
    fmt = params["format"]
    with http.stream("GET", path, params=params) as response:
        announced = _opened(response)
        lines = 0
        tail = b""
        for chunk in response.iter_bytes():
            sink.write(chunk)
            if fmt in STREAMED:
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-3:]
                if on_progress is not None:
                    on_progress(_tasks_in(fmt, lines, closed=False), announced)
        if fmt not in STREAMED:
            # A converted file: its Content-Length is checked by the transport.
            done = announced or 0
        else:
            if fmt == "json" and not tail.endswith(b"]\n"):
                raise _incomplete("the JSON array of the export is not closed")
            done = _tasks_in(fmt, lines, closed=True)
            _check(done, announced)
        if on_progress is not None:
            on_progress(done, announced)
    return done


def _tasks_in(fmt: str, lines: int, closed: bool) -> int:
    """Tasks in so many lines: NDJSON a task a line; the JSON array has a line of its own
    for ``[`` and for ``]`` (``[]`` alone when empty)."""
    if fmt == "ndjson":
        return lines
    return max(0, lines - (2 if closed else 1))


def _opened(response: httpx.Response) -> int | None:
    if not response.is_success:
        response.read()
        raise_for_answer(response)
    announced = response.headers.get(TASKS_HEADER)
    return int(announced) if announced is not None and announced.isdigit() else None


def _check(seen: int, announced: int | None) -> None:
    if announced is not None and seen != announced:
        raise _incomplete(f"the export ended after {seen} of the {announced} tasks it announced")


def _incomplete(message: str) -> TetherAPIError:
    return TetherAPIError(0, "export_incomplete", message)


class _Reader:
    """A file-like ``read`` over streamed bytes, for ijson."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        if not self._rest:
            self._rest = next(self._chunks, b"")
        if size < 0 or size >= len(self._rest):
            out, self._rest = self._rest, b""
            return out
        out, self._rest = self._rest[:size], self._rest[size:]
        return out
