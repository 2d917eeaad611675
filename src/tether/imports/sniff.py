"""Telling an import file's container (json, ndjson, csv, tsv, txt) from its content and name.

The content is looked at far enough to be sure: the first non-empty line whole (however long),
the first JSON value whole, and a sample of the lines after it. The content says which
containers could read the file (``readings``); the file name's extension picks among them
when it names one of them, and is otherwise overruled by a content that allows only one
reading. A content that allows several readings, none of which the name picks, is refused
with a message asking for ``format=`` (a guess could lose rows). A ``format=`` forced by the
user must be one of the content's readings (``check_fits``).
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass
from pathlib import Path

import orjson

from tether.catalog.media import is_uri, media_type_of_uri
from tether.imports import jsonscan

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
SAMPLE_BYTES = 64 * 1024  # the lines after the first that are looked at
SAMPLE_LINES = 50
MAX_LINE = 64 * 1024 * 1024
SUFFIXES = {"json": "json", "ndjson": "ndjson", "jsonl": "ndjson", "csv": "csv", "tsv": "tsv"}
SUFFIXES["txt"] = "txt"
TEXT_READINGS = ("csv", "tsv", "txt")
_JSON_START = b'{["-0123456789tfn'


class FileError(Exception):
    """The file as a whole cannot be read (empty, not UTF-8, not the format it claims)."""


class Unsure(FileError):
    """The content allows several readings (or none the name asks for): ``format=`` must
    say which."""


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


@dataclass
class Content:
    """What the start of a file allows: the containers that could read it, and why."""

    readings: tuple[str, ...]
    what: str  # "a JSON array", "text lines" ... for messages
    first_line: str = ""
    scalar: str | None = None  # the file is one JSON scalar: its description


def detect(path: Path, filename: str | None = None) -> str:
    """The container of a file, from its content and its name (extension in any case)."""
    content = look(path)
    suffix = SUFFIXES.get(Path(filename or "").suffix.lower().lstrip("."))
    if content.scalar is not None and suffix not in TEXT_READINGS:
        raise Unsure(_scalar_message(content.scalar))
    readings = content.readings
    if suffix in readings:
        if suffix == "json" and readings[0] == "ndjson":
            return "ndjson"  # objects a line, named .json: read line by line (it goes on
            # after a broken line)
        return suffix
    if len(readings) == 1 or (suffix is None and readings[0] != "unsure"):
        return readings[0]
    named = (
        f"the file is named .{Path(filename or '').suffix.lstrip('.')} but holds "
        if suffix
        else "the file holds "
    )
    fitting = ", ".join(r for r in readings if r != "unsure")
    raise Unsure(
        f"cannot tell how to read the file: {named}{content.what}; pass format= ({fitting})"
    )


def check_fits(path: Path, container: str) -> None:
    """Raise ``FileError`` unless ``container`` (the user's ``format=``) can read the file."""
    content = look(path)
    if content.scalar is not None and container not in TEXT_READINGS:
        raise FileError(_scalar_message(content.scalar))
    if container not in content.readings:
        fitting = [r for r in content.readings if r != "unsure"]
        raise FileError(
            f"format={container} does not fit the file, which holds {content.what}"
            + (f" (it starts: {content.first_line[:80]!r})" if content.first_line else "")
            + "; pass format="
            + " or format=".join(fitting)
            + ", or leave format out to detect it"
        )


def _scalar_message(what: str) -> str:
    return (
        f"the file holds a single JSON {what}, not rows: a JSON import is an array of rows or "
        "tasks, objects one a line (NDJSON), or one task object (to import the text itself as "
        "a row, pass format=txt)"
    )


# --- looking at the content ------------------------------------------------------------------


def look(path: Path) -> Content:
    """What the file's start allows (``FileError`` for files no reading can take)."""
    lines = _sample(path)
    first = lines[0]
    if b"\x00" in first:
        raise FileError(
            "the file holds NUL bytes: it is binary, or UTF-16/32 text without a byte order "
            "mark; save it as UTF-8 text"
        )
    first_line = first.decode("utf-8", "replace")
    if first[0] in _JSON_START:
        content = _json_content(path, lines)
        if content is not None:
            content.first_line = first_line
            return content
    return Content(_text_readings(first_line), "text lines", first_line)


def _sample(path: Path) -> list[bytes]:
    """The non-empty lines of the file's start, without their line ends: the first whole,
    then up to ``SAMPLE_LINES`` or ``SAMPLE_BYTES``. Refuses empty, UTF-16/32 and non-UTF-8
    files (those whose sampled lines all fail to decode)."""
    lines: list[bytes] = []
    size = 0
    bad: tuple[int, int, int] | None = None  # (byte, offset, line) of the first bad byte
    offset = 0
    with path.open("rb") as f:
        start = f.read(4)
        if start.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            raise FileError("the file is UTF-32 encoded; save it as UTF-8")
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise FileError("the file is UTF-16 encoded; save it as UTF-8")
        f.seek(len(BOM) if start.startswith(BOM) else 0)
        offset = f.tell()
        line_no = 0
        while len(lines) < SAMPLE_LINES and size < SAMPLE_BYTES:
            raw = f.readline(MAX_LINE if not lines else SAMPLE_BYTES)
            if not raw:
                break
            line_no += 1
            text = raw.strip(b" \t\r\n")
            if b"\r" in text:  # lone CRs end lines (old Mac files): the first piece is a line
                text = text.split(b"\r", 1)[0].strip(b" \t") or text
            if text:
                try:
                    text.decode("utf-8")
                except UnicodeDecodeError as exc:
                    if exc.reason != "unexpected end of data" or raw.endswith(b"\n"):
                        at = offset + raw.find(text) + exc.start
                        bad = bad or (text[exc.start], at, line_no)
                        offset += len(raw)
                        continue
                if lines:  # the first line is taken whole; the sample is of the lines after
                    size += len(raw)
                lines.append(text)
            offset += len(raw)
    if not lines:
        if bad:
            byte, at, line = bad
            raise FileError(
                f"the file is not UTF-8 text (byte 0x{byte:02x} at offset {at}, line {line}); "
                "save it as UTF-8"
            )
        raise FileError("the file is empty")
    return lines


def _text_readings(first_line: str) -> tuple[str, ...]:
    """CSV, TSV or text lines, by the first line; the likeliest reading first."""
    if "\t" in first_line:
        return ("tsv", "csv", "txt") if "," in first_line else ("tsv", "txt")
    if "," not in first_line:
        return ("txt", "csv", "tsv")  # one column
    # A URI with a comma in it (``s3://b/a,b.jpg``) is a line of a text file, not two cells.
    if (
        is_uri(first_line)
        and media_type_of_uri(first_line)
        and not _is_uri_with_kind(first_line.split(",", 1)[0])
    ):
        return ("txt", "csv")
    return ("csv", "txt")


def _is_uri_with_kind(value: str) -> bool:
    return is_uri(value) and media_type_of_uri(value) is not None


def _json_content(path: Path, lines: list[bytes]) -> Content | None:
    """What a file that starts like JSON holds; None when it is not JSON after all (a CSV
    whose first cell starts with a bracket, a number or a quote)."""
    first = lines[0]
    first_line = first.decode("utf-8", "replace")
    if first[:1] == b"[":
        return _array_content(path, first_line)
    if _one_value(first):
        value = _parse(first)
        if value is _BROKEN:
            return None if first[:1] != b"{" else _broken_content(lines, first_line)
        if first[:1] not in b"{[" and len(lines) == 1:
            return Content(("txt", "csv", "tsv"), "one JSON value", scalar=_describe(first))
        if len(lines) == 1:
            return Content(("json", "ndjson"), "one JSON value")
        return Content(("ndjson", "json"), "JSON values one a line (NDJSON)")
    if first[:1] != b"{":
        return None  # ``"image","label"``, ``12,cat``: CSV
    with path.open("rb") as f:
        found = jsonscan.first_value(f)
    if found is not None:
        data, start, end = found
        if _parse(data[start:end]) is not _BROKEN:
            return Content(("json",), "a JSON object over several lines")
    return _broken_content(lines, first_line)


def _array_content(path: Path, first_line: str) -> Content:
    with path.open("rb") as f:
        try:
            first = next(jsonscan.array_items(f), None)
        except jsonscan.Break:
            first = jsonscan.Value(1, b"")
    if first is None:
        return Content(("json",), "an empty JSON array")
    if _parse(first.text) is _BROKEN:
        # An array whose first item does not parse: still JSON, unless it reads as text.
        return Content(("json", *_text_readings(first_line)), "a JSON array that does not parse")
    return Content(("json",), "a JSON array")


def _broken_content(lines: list[bytes], first_line: str) -> Content:
    """A first line that starts an object but breaks: NDJSON with a bad first line (when
    later lines are objects), else nothing sure (it may even be text)."""
    if any(
        line[:1] == b"{" and _one_value(line) and _parse(line) is not _BROKEN for line in lines[1:]
    ):
        return Content(("ndjson", "json"), "JSON objects one a line (NDJSON), the first broken")
    readings = ("unsure", "json", "ndjson", *_text_readings(first_line))
    return Content(readings, "a first JSON value that is broken")


def _one_value(line: bytes) -> bool:
    """Whether the line is one whole JSON value, by its structure (not parsed: a value
    nested deeper than a parser allows, or holding a lone surrogate, is one too)."""
    found = jsonscan.first_value(io.BytesIO(line))
    return found is not None and found[2] == len(found[0].rstrip(b" \t\r\n"))


_BROKEN, _REFUSED = object(), object()


def _parse(text: bytes) -> object:
    """The value; ``_BROKEN`` when the text is not JSON for a reason of syntax, ``_REFUSED``
    when it is JSON holding a value tether refuses (``1e400``, a lone surrogate, a byte that
    is not UTF-8, nesting deeper than orjson reads): that is the item's error, not the
    file's."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
        if any(word in reason for word in ("infinity", "surrogate", "depth limit", "UTF-8")):
            return _REFUSED
        return _BROKEN


def _describe(text: bytes) -> str:
    shown = text[:60].decode("utf-8", "replace") + ("..." if len(text) > 60 else "")
    if text[:1] == b'"':
        return f"string ({shown})"
    if text in (b"true", b"false", b"null"):
        return shown
    return f"number ({shown})"
