"""Reading import files, item by item (a file of any size is streamed).

Containers: ``json`` (an array; or one object, or objects one after another), ``ndjson``,
``csv``, ``tsv``, ``txt`` (one URI a line); ``imports.sniff`` tells which. Each item is read as
a Labelbox row or a Label Studio task by ``catalog.manifests``. A bad item is an ``Item`` with
an error, never an exception, and every good item around it is kept: NDJSON, CSV, TSV and
TXT go on after a bad line (a byte that is not UTF-8, malformed JSON); a JSON array goes on
after an item that does not parse, and stops (keeping everything before) only where its
structure breaks.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tether.catalog import manifests
from tether.catalog.manifests import FLAVORS, PUBLIC_FIELDS
from tether.catalog.media import is_uri
from tether.catalog.rows import RowError
from tether.imports import jsonscan
from tether.imports.sniff import (
    BOM,
    CONTAINERS_ONLY,
    SUFFIXES,
    TEXT_READINGS,
    FileError,
    check_fits,
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
# A line break that is a lone CR (old Mac files): the line is cut there.
_LONE_CR_BYTES = re.compile(rb"(?<=\r)(?!\n)")


@dataclass
class Item:
    index: int
    value: dict[str, Any] | None  # canonical Labelbox-shaped row
    error: RowError | None = None
    flavor: str | None = None  # "labelbox" or "label_studio"


def read(
    path: Path,
    container: str,
    field_names: frozenset[str] = frozenset(),
    flavor: str | None = None,
    skip: int = 0,
) -> Iterator[Item]:
    """Items in file order. ``field_names`` are the metadata fields a Labelbox CSV column may
    name; ``flavor`` (``labelbox`` or ``label_studio``) forces how items are read instead of
    telling them apart. The container is checked to fit the content first (``FileError`` if
    not): it may be the user's ``format=``. Items before index ``skip`` (a resumed job's, or
    another reader's) may be left out without being parsed; the indexes of the others do not
    change."""
    if container not in CONTAINERS_ONLY:
        raise FileError(
            f"unknown format {container!r}; expected one of {', '.join(CONTAINERS_ONLY)}"
        )
    if flavor is not None and flavor not in FLAVORS:
        raise FileError(f"unknown flavor {flavor!r}; expected one of {', '.join(FLAVORS)}")
    if container == "txt" and flavor is not None:
        raise FileError("a text file is one URI a line; it takes no labelbox/label_studio")
    check_fits(path, container)
    if container in ("csv", "tsv"):
        yield from _read_csv(path, container, field_names, flavor, skip)
    elif container == "txt":
        yield from _read_txt(path)
    elif container == "json":
        yield from _read_json(path, flavor, skip)
    else:
        yield from _read_ndjson(path, flavor, skip)


def one_object(data: bytes, filename: str = "") -> Item | None:
    """The item of a whole file held in memory that is exactly one JSON object (a task an
    object: a Redis value, a bucket's task file), as ``read`` gives it; None for anything
    else, which ``read`` then takes from a file. It spares a sync the temporary file, the
    sniffing and the scanning that each of a million small objects would otherwise cost."""
    text = data.removeprefix(BOM)
    if text[:1] != b"{" or SUFFIXES.get(Path(filename).suffix.lower()[1:]) in TEXT_READINGS:
        return None  # a .txt, .csv or .tsv name reads the object as text
    try:
        value = manifests.loads(text)
    except RowError:
        return None  # not one object, or not JSON: ``read`` tells exactly why
    if type(value) is not dict:
        return None
    try:
        row, found = manifests.row_of(value)
    except RowError as exc:
        return Item(0, None, RowError(exc.code, f"line 1: {exc.message}"))
    return Item(0, row, flavor=found)


def count_items(path: Path, container: str, flavor: str | None = None) -> int | None:
    """How many items the file holds, counted cheaply (lines), or None when only a full
    parse would tell (JSON)."""
    if container in ("ndjson", "txt"):
        count = 0
        with path.open("rb") as f:
            for line in _split_lone_cr(f):
                if line.strip(b" \t\r\n\xef\xbb\xbf"):
                    count += 1
        return count
    if container in ("csv", "tsv"):
        with path.open("rb") as raw, _text(raw) as f:
            rows = 0
            reader = _csv_reader(f, container)
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error:
                    rows += 1
                    continue
                rows += any(c.strip() for c in cells)
        return max(rows - (1 if _has_header(path, container, flavor) else 0), 0)
    return None


def _bad_bytes(line: int, byte: int) -> RowError:
    return RowError(
        "malformed_file", f"line {line}: not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8"
    )


def _parsed(index: int, text: bytes, line: int, flavor: str | None) -> Item:
    """One JSON item's text, parsed and read as a row."""
    try:
        row, found = manifests.row_of(manifests.loads(text), flavor)
    except RowError as exc:
        return Item(index, None, RowError(exc.code, f"line {line}: {exc.message}"), flavor)
    return Item(index, row, flavor=found)


Parse = Callable[[int, bytes, int, str | None], Item]


def read_objects(path: Path, container: str, skip: int = 0) -> Iterator[Item]:
    """The JSON objects of a JSON (array, or objects one after another) or NDJSON file as
    they are, not read as data rows: for files of other things (a project's predictions).
    Parsed by tether's rules (``manifests.loads``); a value that is not an object is its
    item's error. Reading goes on after bad items as ``read`` does."""
    if container not in ("json", "ndjson"):
        raise FileError(f"the file must be JSON or NDJSON, not {container}")
    check_fits(path, container)
    reader = _read_json if container == "json" else _read_ndjson
    yield from reader(path, None, skip, _object)


def _object(index: int, text: bytes, line: int, _flavor: str | None) -> Item:
    try:
        value = manifests.loads(text)
    except RowError as exc:
        return Item(index, None, RowError(exc.code, f"line {line}: {exc.message}"))
    if type(value) is not dict:
        found = {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")
        found = "null" if value is None else found
        message = f"line {line}: each item must be a JSON object, not {found}"
        return Item(index, None, RowError("malformed_item", message))
    return Item(index, value)


def _split_lone_cr(lines: Iterable[bytes]) -> Iterator[bytes]:
    for raw in lines:
        if b"\r" in raw:
            yield from _lone_cr_pieces(raw)
        else:
            yield raw


def _lone_cr_pieces(raw: bytes) -> list[bytes] | tuple[bytes]:
    """A line cut at its lone CRs (line ends of old Mac files)."""
    if raw.find(b"\r") == len(raw) - 2 and raw.endswith(b"\r\n"):
        return (raw,)
    return [p for p in _LONE_CR_BYTES.split(raw) if p]


# --- JSON and NDJSON -------------------------------------------------------------------------


def _read_json(
    path: Path, flavor: str | None = None, skip: int = 0, parse: Parse = _parsed
) -> Iterator[Item]:
    """An array of items, or objects one after another (one task object is one task)."""
    index = 0
    with path.open("rb") as f:
        head = f.read(jsonscan.BLOCK).removeprefix(BOM)
        start = head.lstrip(jsonscan.WHITESPACE)[:1]
        scan = jsonscan.array_items(f, head) if start == b"[" else jsonscan.values(f, head)
        try:
            for value in scan:
                if index < skip:
                    pass
                elif value.text:
                    yield parse(index, value.text, value.line, flavor)
                else:
                    error = RowError(
                        "malformed_json", f"line {value.line}: an empty item (two commas)"
                    )
                    yield Item(index, None, error, flavor)
                index += 1
        except jsonscan.Break as exc:
            message = (
                f"malformed JSON after item {index}, at line {exc.line}: {exc.message}; the "
                f"file cannot be read on past it (the {index} items before it are read)"
            )
            yield Item(index, None, RowError("malformed_file", message), flavor)


def _read_ndjson(
    path: Path, flavor: str | None = None, skip: int = 0, parse: Parse = _parsed
) -> Iterator[Item]:
    index = 0
    line_no = 0
    with path.open("rb") as f:
        for raw in f:
            pieces = _lone_cr_pieces(raw) if b"\r" in raw else (raw,)
            for piece in pieces:
                line_no += 1
                # Without its line end, as orjson writes a value back (the exactness check).
                line = piece.rstrip(b"\r\n")
                if line_no == 1:
                    line = line.removeprefix(BOM)
                if not line or line.isspace():
                    continue
                if index >= skip:
                    yield parse(index, line, line_no, flavor)
                index += 1


# --- CSV, TSV, TXT ---------------------------------------------------------------------------


_BAD_SEEN = threading.local()


def _mark_bad_bytes(exc: UnicodeError) -> tuple[str, int]:
    """Decode a byte that is not UTF-8 as a surrogate (as ``surrogateescape`` does) and
    note that the file holds one: from then on, each CSV record is checked for them."""
    _BAD_SEEN.value = True
    text, end = codecs.lookup_error("surrogateescape")(exc)
    return str(text), end


codecs.register_error("tether-mark-bad-bytes", _mark_bad_bytes)
_SURROGATE = re.compile("[\udc80-\udcff]")


def _text(f: IO[bytes]) -> IO[str]:
    """The file as text for ``csv.reader``: decoded in C, a BOM dropped, line ends kept (so
    quoted fields keep theirs, and lone CRs end lines too); bytes that are not UTF-8 come
    through as surrogates so the CSV structure holds, and the record holding them becomes
    an error while reading goes on."""
    return io.TextIOWrapper(f, encoding="utf-8-sig", errors="tether-mark-bad-bytes", newline="")


def _bad_byte_in(cells: list[str]) -> int | None:
    found = _SURROGATE.search("".join(cells))
    return None if found is None else ord(found.group()) - 0xDC00


def _csv_reader(f: Iterable[str], container: str) -> Iterator[list[str]]:
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
    with path.open("rb") as raw, _text(raw) as f:
        reader = _csv_reader(f, container)
        try:
            first = next((r for r in reader if any(c.strip() for c in r)), None)
        except csv.Error:
            return False
    return first is not None and _is_header(first, flavor)


def _read_csv(
    path: Path,
    container: str,
    field_names: frozenset[str],
    flavor: str | None = None,
    skip: int = 0,
) -> Iterator[Item]:
    table: _Table | None = None
    started = False
    index = 0
    _BAD_SEEN.value = False
    with path.open("rb") as raw, _text(raw) as f:
        reader = _csv_reader(f, container)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader goes on with the next line
                line = reader.line_num  # type: ignore[attr-defined]
                yield Item(index, None, RowError("malformed_row", f"line {line}: {exc}"))
                index += 1
                continue
            line_no = reader.line_num  # type: ignore[attr-defined]
            if _BAD_SEEN.value and (byte := _bad_byte_in(cells)) is not None:
                if not started:
                    raise FileError(
                        f"the first line of the file is not UTF-8 text (byte 0x{byte:02x}); "
                        "save the file as UTF-8"
                    )
                yield Item(index, None, _bad_bytes(line_no, byte), table.flavor if table else None)
                index += 1
                continue
            if not any(c.strip() for c in cells):
                continue
            if not started:
                started = True
                if _is_header(cells, flavor):
                    table = _Table(cells, flavor, field_names)
                    continue
            if index < skip:
                pass
            elif table is None:
                yield Item(index, _positional_row(cells), flavor="labelbox")
            else:
                yield table.item(index, cells, line_no)
            index += 1


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
        for line_no, raw in enumerate(_split_lone_cr(f), start=1):
            if line_no == 1:
                raw = raw.removeprefix(BOM)
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                yield Item(index, None, _bad_bytes(line_no, raw[exc.start]))
                index += 1
                continue
            if line:
                yield Item(index, {"row_data": line})
                index += 1
