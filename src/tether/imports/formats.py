"""Reading import files. Everything is streamed: a file of any size is read item by item.

Containers (detected from the first bytes and the file name; ``format`` overrides):
``json`` (an array, or one object), ``ndjson``, ``csv``, ``tsv``, ``txt`` (one URI a line).
Each item is then told apart as a Labelbox row or a Label Studio task (see ``canonical``;
``format`` may force one: ``csv/labelbox``, ``label_studio``). Every item comes out in the
Labelbox shape that ``catalog.rows.normalize`` validates, with whatever tether has no field
for under ``extra``.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

import ijson
import orjson

from tether.catalog.media import is_uri, media_type_of_uri
from tether.catalog.rows import RowError

CONTAINERS_ONLY = ("json", "ndjson", "csv", "tsv", "txt")
FLAVORS = ("labelbox", "label_studio")
# Every value the ``format`` option takes: a container, a flavor (the container is then
# detected), or both as ``container/flavor`` (``csv/labelbox``). The API checks against it.
CONTAINERS = (
    *CONTAINERS_ONLY,
    *FLAVORS,
    *(f"{c}/{f}" for c in CONTAINERS_ONLY if c != "txt" for f in FLAVORS),
)
BOM = codecs.BOM_UTF8
# Spellings of one Labelbox field (snake_case first); giving two of them is an error.
ROW_DATA_NAMES = ("row_data", "rowData", "imageUrl")
GLOBAL_KEY_NAMES = ("global_key", "globalKey")
EXTERNAL_ID_NAMES = ("external_id", "externalId")
MEDIA_TYPE_NAMES = ("media_type", "mediaType")
MEDIA_ATTRIBUTE_NAMES = ("media_attributes", "mediaAttributes")
METADATA_NAMES = ("metadata_fields", "metadataFields", "metadata")
LABELBOX_KEYS = frozenset(
    {
        *ROW_DATA_NAMES,
        *GLOBAL_KEY_NAMES,
        *EXTERNAL_ID_NAMES,
        *MEDIA_TYPE_NAMES,
        *MEDIA_ATTRIBUTE_NAMES,
        *METADATA_NAMES,
        "attachments",
        "conversationalData",
    }
)
# What tether's own export adds to a row; dropped when such a row comes back.
SERVER_FIELDS = frozenset({"id", "dataset_id", "created_by", "created_at", "updated_at"})
# The keys of an exported row: a source's own key of one of these names is kept as
# ``source_<name>`` (a Label Studio task's ``id`` is ``source_id``).
PUBLIC_FIELDS = frozenset(
    {
        *SERVER_FIELDS,
        "global_key",
        "external_id",
        "media_type",
        "row_data",
        "media_attributes",
        "metadata_fields",
        "attachments",
    }
)
CSV_LABELBOX_COLUMNS = {"row_data", "data url", "global_key", "external_id", "external id"}
_CSV_COLUMN_TARGETS = {
    "row_data": "row_data",
    "data url": "row_data",
    "global_key": "global_key",
    "global key": "global_key",
    "globalkey": "global_key",
    "external_id": "external_id",
    "external id": "external_id",
    "externalid": "external_id",
    "media_type": "media_type",
    "media type": "media_type",
    "mediatype": "media_type",
}
csv.field_size_limit(64 * 1024 * 1024)


def parse_format(value: str | None) -> tuple[str | None, str | None]:
    """``csv/labelbox`` → (``csv``, ``labelbox``); ``label_studio`` → (None, ``label_studio``)."""
    if not value:
        return None, None
    if value not in CONTAINERS:
        raise FileError(f"unknown format {value!r}; expected one of {', '.join(CONTAINERS)}")
    if value in FLAVORS:
        return None, value
    container, _, flavor = value.partition("/")
    return container, flavor or None


class FileError(Exception):
    """The file as a whole cannot be read (empty, not UTF-8, not the format it claims)."""


@dataclass
class Item:
    index: int
    value: dict[str, Any] | None  # canonical Labelbox-shaped row
    error: RowError | None = None
    flavor: str | None = None  # "labelbox" or "label_studio"


def detect(path: Path, filename: str | None = None) -> str:
    """The container of a file, from its first bytes and its name (extension in any case)."""
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
    first_line = stripped.split("\n", 1)[0].rstrip("\r")
    if "\t" in first_line:
        return "tsv"
    if "," not in first_line:
        return "txt"
    # A URI with a comma in it (``s3://b/a,b.jpg``) is a line of a text file, not two cells.
    if (
        is_uri(first_line)
        and media_type_of_uri(first_line)
        and not _is_uri_with_kind(first_line.split(",", 1)[0])
    ):
        return "txt"
    return "csv"


def _is_uri_with_kind(value: str) -> bool:
    return is_uri(value) and media_type_of_uri(value) is not None


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


def count_items(path: Path, container: str, flavor: str | None = None) -> int | None:
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
        return max(rows - (1 if _has_header(path, container, flavor) else 0), 0)
    return None


def read(
    path: Path,
    container: str,
    field_names: frozenset[str] = frozenset(),
    flavor: str | None = None,
) -> Iterator[Item]:
    """Items in file order; a bad item is an ``Item`` with an error, never an exception.
    A file that breaks off midway ends with one error item saying where. ``field_names`` are
    the metadata fields a Labelbox CSV column may name; ``flavor`` (``labelbox`` or
    ``label_studio``) forces how items are read instead of telling them apart."""
    if container not in CONTAINERS_ONLY:
        raise FileError(
            f"unknown format {container!r}; expected one of {', '.join(CONTAINERS_ONLY)}"
        )
    if flavor is not None and flavor not in FLAVORS:
        raise FileError(f"unknown flavor {flavor!r}; expected one of {', '.join(FLAVORS)}")
    if container in ("csv", "tsv"):
        yield from _read_csv(path, container, field_names, flavor)
    elif container == "txt":
        if flavor is not None:
            raise FileError("a text file is one URI a line; it takes no labelbox/label_studio")
        yield from _read_txt(path)
    else:
        yield from (_read_json if container == "json" else _read_ndjson)(path, flavor)


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
        if self._first and data:  # (ijson reads 0 bytes first, to learn bytes from text)
            self._first = False
            data = data.removeprefix(BOM)
            if not data:  # the read held the BOM only
                data = self._f.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_json(path: Path, flavor: str | None = None) -> Iterator[Item]:
    """An array of items, or one item (a single task object imports as one task).

    ijson's C parser (yajl) stops at an integer beyond 64 bits, which is valid JSON: the file
    is then read again by ijson's Python parser, which reads any integer, skipping the items
    already taken (the row holding the integer is refused as a value tether cannot store,
    and no other row is lost)."""
    index = 0
    backend: Any = ijson
    while True:
        try:
            for value in _json_values(path, backend, skip=index):
                yield _item(index, value, flavor)
                index += 1
            return
        except ijson.JSONError as exc:
            if backend is ijson and "integer overflow" in str(exc):
                backend = ijson.get_backend("python")
                continue
            yield Item(
                index,
                None,
                RowError("malformed_file", f"malformed JSON after item {index}: {_short(exc)}"),
            )
            return
        except UnicodeDecodeError as exc:
            yield _decode_error(index, exc, f"after item {index}")
            return


def _json_values(path: Path, backend: Any, skip: int) -> Iterator[Any]:
    with path.open("rb") as raw:
        first = _head(path).lstrip()[:1]
        items = backend.items(_SkipBom(raw), "item" if first == "[" else "", use_float=True)
        yield from islice(items, skip, None)


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def _read_ndjson(path: Path, flavor: str | None = None) -> Iterator[Item]:
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
                yield _item(index, value, flavor)
            index += 1


# --- CSV, TSV, TXT ---------------------------------------------------------------------------


def _csv_reader(f: IO[str], container: str) -> Iterator[list[str]]:
    """CSV by RFC 4180 (quoted fields may hold commas, doubled quotes and line breaks);
    TSV splits on tabs only, quotes being ordinary characters."""
    if container == "tsv":
        return csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(f)


def _is_header(cells: list[str], flavor: str | None) -> bool:
    """A Label Studio CSV always starts with its header; otherwise a first line whose first
    cell is not a URI is a header."""
    return flavor == "label_studio" or not is_uri(cells[0].strip())


def _has_header(path: Path, container: str, flavor: str | None = None) -> bool:
    with _text(path) as f:
        first = next((r for r in _csv_reader(f, container) if any(c.strip() for c in r)), None)
    return first is not None and _is_header(first, flavor)


def _read_csv(
    path: Path, container: str, field_names: frozenset[str], flavor: str | None = None
) -> Iterator[Item]:
    table: _Table | None = None
    started = False
    index = 0
    line_no = 0
    with _text(path) as f:
        reader = _csv_reader(f, container)
        try:
            for cells in reader:
                line_no = reader.line_num  # type: ignore[attr-defined]
                if not any(c.strip() for c in cells):
                    continue
                if not started:
                    started = True
                    if _is_header(cells, flavor):
                        table = _Table(cells, flavor, field_names)
                        continue
                if table is None:
                    yield Item(index, _positional_row(cells), flavor="labelbox")
                else:
                    yield table.item(index, cells, line_no)
                index += 1
        except csv.Error as exc:
            yield Item(index, None, RowError("malformed_file", f"line {line_no + 1}: {exc}"))
        except UnicodeDecodeError as exc:
            yield _decode_error(index, exc, f"after line {line_no}")


def _positional_row(cells: list[str]) -> dict[str, Any]:
    """A headerless line: the URL, then the external ID; further cells are kept as
    ``column_3`` ..."""
    row: dict[str, Any] = {"row_data": cells[0].strip()}
    if len(cells) > 1 and cells[1].strip():
        row["external_id"] = cells[1].strip()
    if len(cells) > 2:
        extra = {f"column_{i}": c for i, c in enumerate(cells[2:], start=3) if c.strip()}
        row["extra"] = extra or None
    return row


class _Table:
    """How the columns of a CSV/TSV with a header turn into a row, worked out once."""

    def __init__(self, header: list[str], flavor: str | None, field_names: frozenset[str]):
        self.names = [h.strip() for h in header]
        lowered = {n.lower() for n in self.names}
        self.labelbox = flavor == "labelbox" or (
            flavor is None and bool(lowered & CSV_LABELBOX_COLUMNS)
        )
        self.flavor = "labelbox" if self.labelbox else "label_studio"
        self.problem: str | None = None
        if self.labelbox:
            self.plan = self._labelbox_plan(field_names)
        else:
            named = [n for n in self.names if n]
            twice = sorted({n for n in named if named.count(n) > 1})
            if twice:
                self.problem = (
                    f"the header names column {twice[0]!r} twice, so a task would hold two "
                    f"values for data key {twice[0]!r}; rename one"
                )

    def _labelbox_plan(self, field_names: frozenset[str]) -> list[tuple[str, str]]:
        """One (target, name) per column: ``row_data``, ``global_key``, ``external_id``,
        ``media_type``, ``metadata`` (name = the field), ``extra`` (name = the key kept), or
        ``unnamed``."""
        plan: list[tuple[str, str]] = []
        for name in self.names:
            key = name.lower()
            if not name:
                plan.append(("unnamed", ""))
            elif key in _CSV_COLUMN_TARGETS:
                plan.append((_CSV_COLUMN_TARGETS[key], name))
            elif key.startswith("metadata///"):
                plan.append(("metadata", name.rsplit("///", 1)[-1]))
            elif name in field_names:
                plan.append(("metadata", name))
            else:
                plan.append(("extra", "source_" + name if name in PUBLIC_FIELDS else name))
        if not any(target == "row_data" for target, _ in plan):
            # No URL column named: the first column that is not a key or metadata.
            for i, (target, _name) in enumerate(plan):
                if target == "extra":
                    plan[i] = ("row_data", self.names[i])
                    break
        return plan

    def item(self, index: int, cells: list[str], line_no: int) -> Item:
        if len(cells) > len(self.names):
            return self._error(
                index,
                f"line {line_no}: {len(cells)} cells but the header names "
                f"{len(self.names)} columns",
            )
        if self.problem:
            return self._error(index, f"line {line_no}: {self.problem}")
        if not self.labelbox:
            return self._task(index, cells, line_no)
        try:
            return Item(index, self._labelbox_row(cells, line_no), flavor="labelbox")
        except RowError as exc:
            return Item(index, None, exc, flavor="labelbox")

    def _error(self, index: int, message: str) -> Item:
        return Item(index, None, RowError("malformed_row", message), flavor=self.flavor)

    def _task(self, index: int, cells: list[str], line_no: int) -> Item:
        data: dict[str, Any] = {}
        for name, cell in zip(self.names, cells, strict=False):
            if name:
                data[name] = cell
            elif cell.strip():
                return self._unnamed(index, line_no, cell)
        for name in self.names[len(cells) :]:
            if name:
                data[name] = ""  # a short line: the missing cells are empty
        return Item(index, {"row_data": data}, flavor="label_studio")

    def _unnamed(self, index: int, line_no: int, cell: str) -> Item:
        return self._error(
            index, f"line {line_no}: value {cell[:80]!r} is in a column the header does not name"
        )

    def _labelbox_row(self, cells: list[str], line_no: int) -> dict[str, Any]:
        row: dict[str, Any] = {}
        metadata: list[dict[str, Any]] = []
        extra: dict[str, Any] = {}
        for (target, name), cell in zip(self.plan, cells, strict=False):
            value = cell.strip()
            if not value:
                continue
            if target == "metadata":
                metadata.append({"name": name, "value": value})
                continue
            if target == "unnamed":
                raise RowError(
                    "malformed_row",
                    f"line {line_no}: value {value[:80]!r} is in a column the header does not name",
                )
            slot = extra if target == "extra" else row
            key = name if target == "extra" else target
            if key in slot:
                raise RowError(
                    "duplicate_field",
                    f"line {line_no}: {key} is given twice (two columns hold it); keep one",
                )
            slot[key] = value
        row.setdefault("row_data", None)
        row["metadata_fields"] = metadata
        row["extra"] = extra or None
        return row


def _read_txt(path: Path) -> Iterator[Item]:
    """One URI a line, kept as written (spaces, parentheses, query strings ...)."""
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


def _item(index: int, value: Any, flavor: str | None = None) -> Item:
    try:
        row, found = _canonical(value, flavor)
    except RowError as exc:
        return Item(index, None, exc, flavor=flavor)
    return Item(index, row, flavor=found)


def canonical(value: Any, flavor: str | None = None) -> dict[str, Any]:
    """One JSON item as a Labelbox-shaped row.

    An item with ``row_data`` or any Labelbox key is a Labelbox row; any other object is a
    Label Studio task, whose ``data`` dict (or, for a flat task, the whole object) becomes
    ``row_data`` and whose other keys (annotations, predictions, drafts, meta ...) are kept.
    A bare string is a URI (or inline text). ``flavor`` forces one reading.
    """
    return _canonical(value, flavor)[0]


def _canonical(value: Any, flavor: str | None) -> tuple[dict[str, Any], str]:
    if isinstance(value, dict):
        if flavor == "labelbox" or (flavor is None and not LABELBOX_KEYS.isdisjoint(value)):
            return _labelbox_row(value), "labelbox"
        return _label_studio_task(value), "label_studio"
    if isinstance(value, str):
        return {"row_data": value}, flavor or "labelbox"
    raise RowError(
        "malformed_item",
        f"each item must be a JSON object (or a URI string), not {_json_type(value)}",
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else type(value).__name__


def _take(rest: dict[str, Any], names: tuple[str, ...]) -> Any:
    """Pop every spelling of one field; a field given under two spellings is an error."""
    found = None
    given: str | None = None
    for name in names:
        if name in rest:
            value = rest.pop(name)
            if value is None:
                continue
            if given is not None:
                raise RowError(
                    "duplicate_field",
                    f"{names[0]} is given twice (as {given} and as {name}); keep one",
                )
            found, given = value, name
    return found


# A row that spells every key this way (as tether's own export and most tools do) needs no
# sorting out of spellings.
PLAIN_LABELBOX_KEYS = frozenset(
    {
        "row_data",
        "global_key",
        "external_id",
        "media_type",
        "media_attributes",
        "metadata_fields",
        "attachments",
    }
)


def _labelbox_row(item: dict[str, Any]) -> dict[str, Any]:
    if PLAIN_LABELBOX_KEYS.issuperset(item) and item.get("row_data") is not None:
        get = item.get
        return {
            "row_data": item["row_data"],
            "global_key": get("global_key"),
            "external_id": get("external_id"),
            "media_type": get("media_type"),
            "media_attributes": get("media_attributes"),
            "metadata_fields": get("metadata_fields"),
            "attachments": get("attachments"),
            "extra": None,
        }
    rest = dict(item)
    row: dict[str, Any] = {
        "row_data": _take(rest, ROW_DATA_NAMES),
        "global_key": _take(rest, GLOBAL_KEY_NAMES),
        "external_id": _take(rest, EXTERNAL_ID_NAMES),
        "media_type": _take(rest, MEDIA_TYPE_NAMES),
        "media_attributes": _take(rest, MEDIA_ATTRIBUTE_NAMES),
        "metadata_fields": _take(rest, METADATA_NAMES),
        "attachments": rest.pop("attachments", None),
    }
    if row["row_data"] is None and rest.get("conversationalData") is not None:
        # Labelbox's legacy conversational row: the messages (with type and version) are
        # the row's data.
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
        return {"row_data": task}  # a flat task: the object is the data
    extra: dict[str, Any] = {}
    for key, value in task.items():
        if key == "data":
            continue
        if key in PUBLIC_FIELDS:
            renamed = "source_" + key
            if renamed in task:
                raise RowError(
                    "duplicate_field",
                    f"the task has both {key} and {renamed}; tether keeps a task's own {key} "
                    f"as {renamed}",
                )
            key = renamed
        extra[key] = value
    return {"row_data": data, "extra": extra or None}
