"""Reading and checking an import's items: in the job's thread and in a child process the
chunks are the same; failures and early stops behave the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from tests.conftest import Tenant
from tether.catalog.metadata_schema import RESERVED, Schema
from tether.imports import pipeline, sniff
from tether.imports.runner import _validate

SCHEMA = Schema(list(RESERVED))
NAMES = frozenset(f.name for f in SCHEMA.fields)


def _file(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "rows.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _rows(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        row: dict[str, Any] = {
            "row_data": f"s3://b/{i}.jpg",
            "global_key": f"k-{i}",
            "metadata_fields": [{"name": "split", "value": "train" if i % 2 else "nope"}],
        }
        out.append(orjson.dumps(row))
    return out


def _collect(source: pipeline.Source, in_child: bool, chunk_rows: int = 3) -> list[Any]:
    return [
        (c.done, c.flavor, c.good, [vars(e) for e in c.errors])
        for c in pipeline.chunks(source, SCHEMA, None, chunk_rows, _validate, in_child=in_child)
    ]


@pytest.mark.parametrize("head_start", [0, 1, 2, 100])
def test_the_child_yields_what_the_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head_start: int
) -> None:
    """However many chunks the job's thread reads before the child takes over (none, the one
    read while it starts, ..., all of them), the chunks are the same."""
    monkeypatch.setattr(pipeline, "HEAD_START_CHUNKS", head_start)
    lines = [*_rows(7), b'{"row_data": "s3://b/x.jpg", ', b'"just a string"', *_rows(2)]
    source = pipeline.Source(_file(tmp_path, lines), "ndjson", None, NAMES)
    here = _collect(source, in_child=False)
    assert [done for done, *_ in here] == [3, 6, 9, 11]
    assert sum(len(good) for _d, _f, good, _e in here) == 5
    assert sum(len(errors) for *_x, errors in here) == 6
    assert _collect(source, in_child=True) == here

    resumed = pipeline.Source(source.path, "ndjson", None, NAMES, skip=6)
    assert _collect(resumed, in_child=True) == _collect(resumed, in_child=False)
    assert [done for done, *_ in _collect(resumed, in_child=True)] == [9, 11]


def test_a_file_error_in_the_child_is_the_same_file_error(tmp_path: Path) -> None:
    source = pipeline.Source(_file(tmp_path, _rows(2)), "yaml", None, NAMES)
    for in_child in (False, True):
        with pytest.raises(sniff.FileError, match="unknown format"):
            _collect(source, in_child=in_child)


def test_closing_early_stops_the_child(tmp_path: Path) -> None:
    source = pipeline.Source(_file(tmp_path, _rows(50)), "ndjson", None, NAMES)
    chunks = pipeline.chunks(source, SCHEMA, None, 2, _validate, in_child=True)
    assert next(chunks).done == 2
    chunks.close()  # the child is killed and reaped; nothing hangs


def test_the_child_starts_with_the_chunks_and_stops_when_they_close_unread(
    tmp_path: Path,
) -> None:
    """The child starts when the chunks are asked for, before the first one (so it gets ready
    while the job counts the items); closing them before any was read ends it too."""
    source = pipeline.Source(_file(tmp_path, _rows(50)), "ndjson", None, NAMES)
    before = {p.pid for p in psutil.Process().children()}
    chunks = pipeline.chunks(source, SCHEMA, None, 2, _validate, in_child=True)
    started = {p.pid for p in psutil.Process().children()} - before
    assert len(started) == 1
    chunks.close()
    assert not started & {p.pid for p in psutil.Process().children()}


def test_a_large_import_through_the_child_on_each_database(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "CHILD_MIN_BYTES", 0)
    ds = tenant.dataset()
    body = b"\n".join(_rows(120)) + b"\n{oops\n"
    job = tenant.import_rows(ds["id"], body)
    assert job["status"] == "completed_with_errors", job
    assert job["counts"] == {"created": 60, "updated": 0, "failed": 61}
    assert job["format"] == "ndjson/labelbox"
    errors = tenant.errors(job["id"])
    assert [e["index"] for e in errors] == [*range(0, 120, 2), 120]
    assert errors[-1]["code"] == "malformed_json"
    rows = tenant.get("/data-rows", params={"dataset_id": ds["id"], "limit": 1000}).json()
    assert [r["global_key"] for r in rows["items"]] == [f"k-{i}" for i in range(1, 120, 2)]


def test_the_child_skips_what_the_thread_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child starts where the job's thread stopped: it is handed the index to go on
    from, and a chunk the thread read is never read again."""
    monkeypatch.setattr(pipeline, "HEAD_START_CHUNKS", 1)
    seen: list[int] = []
    real = pipeline._here

    def spy(source: pipeline.Source, *args: Any) -> Any:
        seen.append(source.skip)
        return real(source, *args)

    monkeypatch.setattr(pipeline, "_here", spy)
    source = pipeline.Source(_file(tmp_path, _rows(10)), "ndjson", None, NAMES, skip=1)
    chunks = _collect(source, in_child=True)
    assert [done for done, *_ in chunks] == [4, 7, 10]
    assert seen == [1]  # this process read items 1-3; the child (its own _here) from 4 on


@pytest.mark.parametrize("container", ["ndjson", "json", "csv", "txt"])
def test_readers_skip_without_changing_indexes(tmp_path: Path, container: str) -> None:
    from tether.imports import readers

    rows = [f"s3://b/{i}.jpg" for i in range(7)]
    body = {
        "ndjson": "\n\n".join(orjson.dumps({"row_data": r}).decode() for r in rows) + "\n",
        "json": orjson.dumps([{"row_data": r} for r in rows]).decode(),
        "csv": "row_data\n" + "\n".join(rows) + "\n",
        "txt": "\n".join(rows) + "\n",
    }[container]
    path = tmp_path / f"rows.{container}"
    path.write_text(body)
    every = list(readers.read(path, container))
    assert [i.index for i in every] == list(range(7))
    rest = [i for i in readers.read(path, container, skip=4) if i.index >= 4]
    assert [(i.index, i.value) for i in rest] == [(i.index, i.value) for i in every[4:]]
