"""Reading import files. Everything is streamed: a file of any size is read item by item.

Containers (detected from the first bytes and the file name; ``format`` overrides):
``json`` (an array, or one object), ``ndjson``, ``csv``, ``tsv``, ``txt`` (one URI a line).
Each item is then told apart as a Labelbox row or a Label Studio task (see ``canonical``).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ijson
import orjson

from tether.catalog.media import is_uri
from tether.catalog.rows import RowError

CONTAINERS = ("json", "ndjson", "csv", "tsv", "txt")
BOM = codecs.BOM_UTF8
LABELBOX_KEYS = frozenset(
    {
        "row_data",
        "global_key",
        "external_id",
        "externalId",
        "metadata_fields",
        "metadata",
        "attachments",
        "media_type",
        "imageUrl",
        "conversationalData",
    }
)
SERVER_FIELDS = frozenset({"id", "dataset_id", "created_by", "created_at", "updated_at"})
CSV_LABELBOX_COLUMNS = {"row_data", "data url", "global_key", "external_id", "external id"}
csv.field_size_limit(64 * 1024 * 1024)


class FileError(Exception):
    """The file as a whole cannot be read (empty, not UTF-8, not the format it claims)."""


@dataclass
class Item:
    index: int
    value: dict[str, Any] | None  # canonical Labelbox-shaped row
    error: RowError | None = None
    flavor: str | None = None  # "labelbox" or "label_studio"


def detect(path: Path, filename: str | None = None) -> str:
    head = _head(path)
    stripped = head.lstrip()
    if not stripped:
        raise FileError("the file is empty")
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    first = stripped[:1]
    if first in "[{" and suffix not in ("csv", "tsv", "txt"):
        if first == "[":
            return "json"
        line = stripped.split("\n", 1)[0]
        try:
            orjson.loads(line)
            return "ndjson"
        except orjson.JSONDecodeError:
            return "json"
    if suffix in ("csv", "tsv", "txt"):
        return suffix
    if suffix in ("ndjson", "jsonl"):
        return "ndjson"
    first_line = stripped.split("\n", 1)[0]
    if "\t" in first_line:
        return "tsv"
    return "csv" if "," in first_line else "txt"


def _head(path: Path, size: int = 65536) -> str:
    with path.open("rb") as f:
        raw = f.read(size)
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileError("the file is UTF-16 encoded; save it as UTF-8")
    raw = raw.removeprefix(BOM)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":  # a character cut by the read size
            return raw[: exc.start].decode("utf-8")
        raise FileError(
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None


def count_items(path: Path, container: str) -> int | None:
    """How many items the file holds, counted cheaply (lines), or None when only a full
    parse would tell (JSON arrays)."""
    if container in ("ndjson", "txt"):
        count = 0
        with path.open("rb") as f:
            for line in f:
                if line.strip(b" \t\r\n\xef\xbb\xbf"):
                    count += 1
        return count
    if container in ("csv", "tsv"):
        try:
            with _text(path) as f:
                rows = sum(1 for r in _csv_reader(f, container) if any(c.strip() for c in r))
        except (csv.Error, UnicodeDecodeError):
            return None
        return max(rows - (1 if _has_header(path, container) else 0), 0)
    return None


def read(path: Path, container: str, field_names: frozenset[str] = frozenset()) -> Iterator[Item]:
    """Items in file order; a bad item is an ``Item`` with an error, never an exception.
    A file that breaks off midway ends with one error item saying where. ``field_names`` are
    the metadata fields a Labelbox CSV column may name."""
    if container not in CONTAINERS:
        raise FileError(f"unknown format {container!r}; expected one of {', '.join(CONTAINERS)}")
    if container in ("csv", "tsv"):
        yield from _read_csv(path, container, field_names)
    else:
        yield from {"json": _read_json, "ndjson": _read_ndjson, "txt": _read_txt}[container](path)


def _text(path: Path) -> IO[str]:
    return path.open("r", encoding="utf-8-sig", newline="")


def _decode_error(index: int, exc: UnicodeDecodeError, where: str) -> Item:
    return Item(
        index,
        None,
        RowError(
            "malformed_file",
            f"{where}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save the file as UTF-8",
        ),
    )


# --- JSON and NDJSON -------------------------------------------------------------------------


class _SkipBom(io.RawIOBase):
    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._first = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(len(buffer))
        if self._first:
            self._first = False
            data = data.removeprefix(BOM)
        buffer[: len(data)] = data
        return len(data)


def _read_json(path: Path) -> Iterator[Item]:
    index = 0
    with path.open("rb") as raw:
        f = _SkipBom(raw)
        first = _head(path).lstrip()[:1]
        items = ijson.items(f, "item" if first == "[" else "", use_float=True)
        try:
            for value in items:
                yield _item(index, value)
                index += 1
        except ijson.JSONError as exc:
            yield Item(
                index,
                None,
                RowError("malformed_file", f"malformed JSON after item {index}: {_short(exc)}"),
            )
        except UnicodeDecodeError as exc:
            yield _decode_error(index, exc, f"after item {index}")


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def _read_ndjson(path: Path) -> Iterator[Item]:
    index = 0
    with path.open("rb") as f:
        for line_no, line in enumerate(f, start=1):
            if line_no == 1:
                line = line.removeprefix(BOM)
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield Item(
                    index,
                    None,
                    RowError("malformed_json", f"line {line_no}: malformed JSON ({_short(exc)})"),
                )
            else:
                yield _item(index, value)
            index += 1


# --- CSV, TSV, TXT ---------------------------------------------------------------------------


def _csv_reader(f: IO[str], container: str) -> Iterator[list[str]]:
    if container == "tsv":
        return csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(f)


def _has_header(path: Path, container: str) -> bool:
    with _text(path) as f:
        first = next((r for r in _csv_reader(f, container) if any(c.strip() for c in r)), None)
    return bool(first) and not is_uri(first[0].strip())  # type: ignore[index]


def _read_csv(path: Path, container: str, field_names: frozenset[str]) -> Iterator[Item]:
    header: list[str] | None = None
    labelbox = True
    index = 0
    line_no = 0
    with _text(path) as f:
        reader = _csv_reader(f, container)
        try:
            for cells in reader:
                line_no = reader.line_num  # type: ignore[attr-defined]
                if not any(c.strip() for c in cells):
                    continue
                if index == 0 and header is None and not is_uri(cells[0].strip()):
                    header = [c.strip() for c in cells]
                    labelbox = bool({h.lower() for h in header} & CSV_LABELBOX_COLUMNS)
                    continue
                yield _csv_item(index, cells, header, labelbox, line_no, field_names)
                index += 1
        except csv.Error as exc:
            yield Item(index, None, RowError("malformed_file", f"line {line_no + 1}: {exc}"))
        except UnicodeDecodeError as exc:
            yield _decode_error(index, exc, f"after line {line_no}")


def _csv_item(
    index: int,
    cells: list[str],
    header: list[str] | None,
    labelbox: bool,
    line_no: int,
    field_names: frozenset[str],
) -> Item:
    if header is None:
        row: dict[str, Any] = {"row_data": cells[0].strip()}
        if len(cells) > 1 and cells[1].strip():
            row["external_id"] = cells[1].strip()
        return Item(index, row, flavor="labelbox")
    if len(cells) > len(header):
        return Item(
            index,
            None,
            RowError(
                "malformed_row",
                f"line {line_no}: {len(cells)} cells but the header names {len(header)} columns",
            ),
        )
    pairs = list(zip(header, cells, strict=False))
    if not labelbox:
        return Item(index, {"row_data": dict(pairs)}, flavor="label_studio")
    return Item(index, _labelbox_csv_row(pairs, field_names), flavor="labelbox")


def _labelbox_csv_row(pairs: list[tuple[str, str]], field_names: frozenset[str]) -> dict[str, Any]:
    """Columns by name: the URL, keys, metadata (by field name or ``metadata///kind///name``);
    any other column is kept with the row under its own name."""
    names = {h.lower(): h for h, _ in pairs}
    url_column = names.get("row_data") or names.get("data url") or pairs[0][0]
    row: dict[str, Any] = {"row_data": None, "metadata_fields": [], "extra": {}}
    for name, cell in pairs:
        value = cell.strip()
        key = name.lower()
        if name == url_column:
            row["row_data"] = value or None
        elif not value:
            continue
        elif key == "global_key":
            row["global_key"] = value
        elif key in ("external_id", "external id", "externalid"):
            row["external_id"] = value
        elif key in ("media_type", "media type"):
            row["media_type"] = value
        elif name.startswith("metadata///"):
            row["metadata_fields"].append({"name": name.rsplit("///", 1)[-1], "value": value})
        elif name in field_names:
            row["metadata_fields"].append({"name": name, "value": value})
        else:
            row["extra"][name] = value
    return row


def _read_txt(path: Path) -> Iterator[Item]:
    index = 0
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1:
                raw = raw.removeprefix(BOM)
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                yield _decode_error(index, exc, f"line {line_no}")
                index += 1
                continue
            if line:
                yield Item(index, {"row_data": line})
                index += 1


# --- telling a Labelbox row from a Label Studio task -----------------------------------------


def _item(index: int, value: Any) -> Item:
    try:
        row = canonical(value)
    except RowError as exc:
        return Item(index, None, exc)
    is_task = isinstance(value, dict) and not value.keys() & LABELBOX_KEYS
    return Item(index, row, flavor="label_studio" if is_task else "labelbox")


def canonical(value: Any) -> dict[str, Any]:
    """One JSON item as a Labelbox-shaped row.

    An item with ``row_data`` or any Labelbox key is a Labelbox row; any other object is a
    Label Studio task, whose ``data`` dict (or, for a flat task, the whole object) becomes
    ``row_data`` and whose other keys (annotations, predictions, drafts, meta ...) are kept.
    A bare string is a URI (or inline text).
    """
    if isinstance(value, str):
        return {"row_data": value}
    if not isinstance(value, dict):
        raise RowError(
            "malformed_item",
            f"each item must be a JSON object (or a URI string), not {type(value).__name__}",
        )
    if value.keys() & LABELBOX_KEYS:
        return _labelbox_row(value)
    return _label_studio_task(value)


def _labelbox_row(item: dict[str, Any]) -> dict[str, Any]:
    rest = dict(item)
    row: dict[str, Any] = {
        "row_data": rest.pop("row_data", None),
        "global_key": rest.pop("global_key", rest.pop("globalKey", None)),
        "external_id": rest.pop("external_id", rest.pop("externalId", None)),
        "media_type": rest.pop("media_type", rest.pop("mediaType", None)),
        "media_attributes": rest.pop("media_attributes", rest.pop("mediaAttributes", None)),
        "attachments": rest.pop("attachments", None),
    }
    fields = rest.pop("metadata_fields", None)
    legacy = rest.pop("metadata", None)
    row["metadata_fields"] = fields if fields is not None else legacy
    image_url = rest.pop("imageUrl", None)
    if row["row_data"] is None and image_url is not None:
        row["row_data"] = image_url
    if row["row_data"] is None and "conversationalData" in rest:
        row["row_data"] = {
            k: rest.pop(k) for k in ("conversationalData", "type", "version") if k in rest
        }
        row["media_type"] = row["media_type"] or "CONVERSATIONAL"
    extra = {k: v for k, v in rest.items() if k not in SERVER_FIELDS}
    row["extra"] = extra or None
    return row


def _label_studio_task(task: dict[str, Any]) -> dict[str, Any]:
    data = task.get("data")
    if not isinstance(data, dict):
        return {"row_data": task}
    extra = {k: v for k, v in task.items() if k != "data"}
    if "id" in extra:
        extra["source_id"] = extra.pop("id")
    return {"row_data": data, "extra": extra or None}
