"""``readers.one_object``, the in-memory reading of an object that is one JSON object, gives
exactly what the file readers give for the same bytes under the same name (or declines, and
the file readers take it): every content a bucket or a Redis value may hold, under every
kind of name."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tether.imports import readers, sniff
from tether.imports.readers import Item

TASK = {"data": {"image": "s3://bucket/a b#1.jpg", "text": "日本語"}, "meta": {"n": 1}}
CONTENTS = {
    "task": orjson.dumps(TASK),
    "pretty": orjson.dumps(TASK, option=orjson.OPT_INDENT_2),
    "crlf": orjson.dumps(TASK, option=orjson.OPT_INDENT_2).replace(b"\n", b"\r\n"),
    "bom": sniff.BOM + orjson.dumps(TASK),
    "trailing newline": orjson.dumps(TASK) + b"\n",
    "spaces first": b"  \n" + orjson.dumps(TASK),
    "flat task": b'{"image": "gs://b/x.png"}',
    "labelbox": b'{"row_data": "https://x/y.jpg", "global_key": "k1", "external_id": 7}',
    "two spellings": b'{"row_data": "https://x/y.jpg", "rowData": "https://x/z.jpg"}',
    "key twice": b'{"data": {"text": "a"}, "data": {"text": "b"}}',
    "huge number": b'{"data": {"text": "a", "n": 1e400}}',
    "long integer": b'{"data": {"text": "a", "n": 123456789012345678901234567890}}',
    "empty object": b"{}",
    "two objects": orjson.dumps(TASK) + b"\n" + orjson.dumps(TASK),
    "two on a line": orjson.dumps(TASK) + orjson.dumps(TASK),
    "array": orjson.dumps([TASK, TASK]),
    "broken": b'{"data": {"text": "no end"',
    "not utf-8": b'{"data": {"text": "\xff\xfe"}}',
    "nul": b'{"data": {"text": "a\x00b"}}',
    "scalar": b'"s3://bucket/x.jpg"',
    "text line": b"s3://bucket/x.jpg\n",
}
NAMES = ["", "task", "a/b/task.json", "x.JSON", "x.ndjson", "x.jsonl", "x.txt", "x.csv", "x.tsv"]


def _plain(item: Item) -> tuple[object, ...]:
    error = (item.error.code, item.error.message) if item.error is not None else None
    return item.index, item.value, error, item.flavor


def _from_file(tmp_path: Path, data: bytes, name: str) -> list[tuple[object, ...]] | str:
    path = tmp_path / "object"
    path.write_bytes(data)
    try:
        return [_plain(item) for item in readers.read(path, sniff.detect(path, name))]
    except sniff.FileError as exc:
        return f"FileError: {exc}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("content", list(CONTENTS))
def test_one_object_reads_as_the_file_readers_do(tmp_path: Path, content: str, name: str) -> None:
    data = CONTENTS[content]
    fast = readers.one_object(data, name)
    if fast is None:
        return  # declined: the file readers take it, as they did before
    assert _from_file(tmp_path, data, name) == [_plain(fast)]


def test_one_object_takes_what_a_task_an_object_usually_is() -> None:
    """Not a check that declines everything: the usual shapes are read in memory."""
    for content in ("task", "pretty", "crlf", "bom", "trailing newline", "flat task", "labelbox"):
        item = readers.one_object(CONTENTS[content], "tasks/1.json")
        assert item is not None and item.error is None, content
        assert item.index == 0
    item = readers.one_object(CONTENTS["two spellings"], "")
    assert item is not None and item.error is not None and item.error.message.startswith("line 1")
    for content in ("two objects", "two on a line", "array", "broken", "scalar", "key twice"):
        assert readers.one_object(CONTENTS[content], "x.json") is None, content
    assert readers.one_object(CONTENTS["task"], "x.txt") is None
