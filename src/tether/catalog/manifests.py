"""Manifest items: Labelbox data rows and Label Studio tasks, as they come from an import file
or from an object read from a bucket.

``loads`` parses one item's JSON text by tether's rules (stricter than JSON parsers are: a key
given twice, or a number no 64-bit integer or double can hold, is the item's error, never a
silent last-wins or rounding). ``row_of`` tells a Labelbox row from a Label Studio task and
turns either into the Labelbox shape that ``catalog.rows.normalize`` validates, with whatever
tether has no field for under ``extra``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from tether.catalog.rows import RowError

FLAVORS = ("labelbox", "label_studio")
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
# The keys of a Label Studio task beside its ``data`` (as Label Studio exports them). An
# object with only these has no data: it is refused, not imported as a row of annotations.
TASK_KEYS = frozenset(
    {
        "id",
        "annotations",
        "predictions",
        "drafts",
        "meta",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "project",
        "inner_id",
        "file_upload",
        "is_labeled",
        "overlap",
        "total_annotations",
        "cancelled_annotations",
        "total_predictions",
        "comment_count",
        "unresolved_comment_count",
        "last_comment_updated_at",
        "comment_authors",
        "annotators",
        "storage_filename",
    }
)
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
# Integers beyond these come out of orjson as doubles (rounded): they are refused instead.
MIN_INT, MAX_INT = -(2**63), 2**64 - 1
_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * 19  # any integer beyond 64 bits has at least 19 digits


# --- JSON text -------------------------------------------------------------------------------


def loads(text: bytes) -> Any:
    """One item's JSON, parsed; a ``RowError`` when it is not JSON tether can keep exactly.

    orjson parses (fast), but takes the last of two equal keys and rounds integers beyond
    64 bits to doubles. Neither can have happened when orjson writes back exactly the text
    it read (compact JSON, as most tools write it); otherwise cheap byte checks decide, and
    only an item that fails them is parsed again by the standard library to find out (a
    string holding a colon escaped as ``\\u003a``, a number of 19 digits or more)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(text, exc) from None
    if type(value) is dict or type(value) is list:
        written = orjson.dumps(value)
        if written != text and _suspect(text, written):
            _strict(text)
    elif text.translate(_DIGITS).find(_LONG_NUMBER) >= 0:
        _strict(text)
    return value


def _suspect(text: bytes, written: bytes) -> bool:
    """Whether a key may be given twice, or an integer rounded. Each key is followed by one
    colon, in the text and in orjson's writing of what it read, so a key given twice leaves
    the text one colon more."""
    return (
        text.count(b":") != written.count(b":")
        or b"\\u003" in text
        or text.translate(_DIGITS).find(_LONG_NUMBER) >= 0
    )


def _strict(text: bytes) -> None:
    json.loads(text, object_pairs_hook=_once, parse_int=_int64)


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise RowError("duplicate_key", f"the object gives key {key[:100]!r} twice; keep one")
        seen.add(key)
    return {}  # only the check matters: orjson's result is kept


def _int64(digits: str) -> int:
    number = int(digits)
    if not MIN_INT <= number <= MAX_INT:
        raise RowError(
            "invalid_value",
            f"the number {_cut(digits)} does not fit in 64 bits, so tether cannot store it "
            "exactly; give it as a string",
        )
    return 0


def _decode_error(text: bytes, exc: orjson.JSONDecodeError) -> RowError:
    reason = str(exc).split(":", 1)[0]
    rest = text[exc.pos :] if exc.pos >= 0 else b""
    if "UTF-8" in reason:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as bad:
            return RowError(
                "malformed_file",
                f"not UTF-8 text (byte 0x{text[bad.start]:02x}); save the file as UTF-8",
            )
    if "infinity" in reason:
        number = rest.split(b",", 1)[0].split(b"}", 1)[0].split(b"]", 1)[0].strip()
        return RowError(
            "invalid_value",
            f"the number {_cut(number.decode(errors='replace'))} is beyond what a double "
            "holds, so tether cannot store it; give it as a string",
        )
    if "surrogate" in reason:
        return RowError(
            "invalid_value",
            "a string holds a lone UTF-16 surrogate escape (like \\ud800), which is not text "
            "tether can store",
        )
    if "depth limit" in reason:
        return RowError(
            "invalid_value", "the item is nested deeper than tether reads (1,024 levels)"
        )
    for word in (b"NaN", b"Infinity", b"-Infinity"):
        if rest.startswith(word):
            return RowError(
                "invalid_value",
                f"{word.decode()} is not a JSON number; give null or a string instead",
            )
    return RowError("malformed_json", f"malformed JSON ({_short(str(exc))})")


def _cut(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _short(text: str) -> str:
    return " ".join(text.split())[:300]


# --- telling a Labelbox row from a Label Studio task -----------------------------------------


def canonical(value: Any, flavor: str | None = None) -> dict[str, Any]:
    """One JSON item as a Labelbox-shaped row (see ``row_of``)."""
    return row_of(value, flavor)[0]


def row_of(value: Any, flavor: str | None = None) -> tuple[dict[str, Any], str]:
    """One JSON item as a Labelbox-shaped row, and which it was (``labelbox`` or
    ``label_studio``); ``RowError`` when it is neither.

    An item with ``row_data`` or any Labelbox key is a Labelbox row; any other object is a
    Label Studio task, whose ``data`` object (or, for a flat task, the whole object) becomes
    ``row_data`` and whose other keys (annotations, predictions, drafts, meta ...) are kept.
    A bare string is a URI (or inline text). ``flavor`` forces one reading.
    """
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
    if "data" not in task:
        if task and TASK_KEYS.issuperset(task):
            raise RowError(
                "missing_row_data",
                "the task has no data object (only " + ", ".join(sorted(task)) + "); a Label "
                'Studio task is {"data": {...}, "annotations": [...], ...}',
            )
        return {"row_data": task}  # a flat task: the object is the data
    data = task["data"]
    if not isinstance(data, dict):
        raise RowError(
            "missing_row_data",
            f"the task's data must be an object of data keys, not {_json_type(data)}",
        )
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
