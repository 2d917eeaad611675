"""What makes a valid data row: one function that turns a user's row (a dict in the
Labelbox shape, after ``imports.formats`` normalised it) into the values tether stores, or a
``RowError`` naming the field and the reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tether.catalog.media import MEDIA_TYPES, infer_for_string, infer_for_task, is_uri
from tether.catalog.metadata_schema import Schema, coerce

MAX_GLOBAL_KEY = 200
MAX_EXTERNAL_ID = 1000
ATTACHMENT_TYPES = (
    "IMAGE",
    "VIDEO",
    "TEXT",
    "TEXT_URL",
    "RAW_TEXT",
    "HTML",
    "IMAGE_OVERLAY",
    "PDF_URL",
    "CSV_TEXT",
)
NUMERIC_ATTRIBUTES = (
    "width",
    "height",
    "duration",
    "size",
    "frameRate",
    "frameCount",
    "channels",
    "sampleRate",
)

# Composite row_data, in Labelbox's camelCase and in snake_case.
PDF_KEYS = ("pdf_url", "pdfUrl")
TEXT_LAYER_KEYS = ("text_layer_url", "textLayerUrl")
TILE_KEYS = ("tile_layer_url", "tileLayerUrl")
ZOOM_KEYS = ("min_zoom", "minZoom", "max_zoom", "maxZoom")
CONVERSATION_KEYS = ("conversationalData", "messages")


class RowError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class NormalRow:
    global_key: str | None
    external_id: str | None
    media_type: str
    row_data: str  # JSON text
    media_attributes: str | None
    metadata: str | None  # JSON text of [{schema_id, name, value}]
    metadata_values: list[tuple[str, str | None, float | None]]
    attachments: str | None
    extra: str | None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize(item: dict[str, Any], schema: Schema, media_type: str | None = None) -> NormalRow:
    """Validate one row. ``media_type`` overrides the row's own (an import-wide choice)."""
    row_data = item.get("row_data")
    kind = _media_type(media_type or item.get("media_type"), row_data)
    global_key = _key(item.get("global_key"), "global_key", MAX_GLOBAL_KEY)
    external_id = _key(item.get("external_id"), "external_id", MAX_EXTERNAL_ID)
    meta_json, meta_values = _metadata(item.get("metadata_fields"), schema)
    extra = item.get("extra")
    return NormalRow(
        global_key,
        external_id,
        kind,
        _dumps(row_data),
        _media_attributes(item.get("media_attributes")),
        meta_json,
        meta_values,
        _attachments(item.get("attachments")),
        _dumps(extra) if extra else None,
    )


def _media_type(given: Any, row_data: Any) -> str:
    if row_data is None or (isinstance(row_data, str) and not row_data.strip()):
        raise RowError("missing_row_data", "row_data is missing or empty")
    if isinstance(row_data, str):
        if is_uri(row_data) and row_data.split("?", 1)[0].endswith("/"):
            raise RowError("invalid_row_data", f"row_data {row_data!r} is a folder, not a file")
        inferred = infer_for_string(row_data)
    elif isinstance(row_data, dict):
        if not row_data:
            raise RowError("missing_row_data", "row_data is an empty object")
        inferred = _composite_kind(row_data)
    else:
        raise RowError(
            "invalid_row_data",
            "row_data must be a string (a URI or text) or an "
            f"object, not {type(row_data).__name__}",
        )
    if given is None or given == "":
        if inferred is None:
            raise RowError(
                "invalid_media_type",
                f"cannot tell the media type of {row_data!r} from its extension; give media_type",
            )
        return inferred
    if not isinstance(given, str) or given.strip().upper() not in MEDIA_TYPES:
        raise RowError(
            "invalid_media_type",
            f"unknown media_type {given!r}; expected one of " + ", ".join(MEDIA_TYPES),
        )
    chosen = given.strip().upper()
    if (
        isinstance(row_data, dict)
        and inferred in ("PDF", "TMS_GEO", "CONVERSATIONAL")
        and chosen != inferred
    ):
        raise RowError(
            "invalid_media_type",
            f"media_type {chosen} contradicts row_data, which is a {inferred} object",
        )
    return chosen


def _composite_kind(data: dict[str, Any]) -> str:
    if _first(data, PDF_KEYS) is not None:
        _require_url(data, PDF_KEYS)
        if _first(data, TEXT_LAYER_KEYS) is not None:
            _require_url(data, TEXT_LAYER_KEYS)
        return "PDF"
    if _first(data, TILE_KEYS) is not None:
        _check_tiles(data)
        return "TMS_GEO"
    if _first(data, CONVERSATION_KEYS) is not None:
        if not isinstance(_first(data, CONVERSATION_KEYS), list):
            raise RowError("invalid_row_data", "conversationalData must be a list of messages")
        return "CONVERSATIONAL"
    return infer_for_task(data)


def _first(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((data[k] for k in keys if data.get(k) is not None), None)


def _require_url(data: dict[str, Any], keys: tuple[str, ...]) -> None:
    value = _first(data, keys)
    if not isinstance(value, str) or not value.strip():
        raise RowError("invalid_row_data", f"row_data.{keys[0]} must be a non-empty URL")


def _check_tiles(data: dict[str, Any]) -> None:
    _require_url(data, TILE_KEYS)
    bounds = data.get("bounds")
    if bounds is not None and not (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(p, list) and len(p) == 2 and all(_is_num(c) for c in p) for p in bounds)
    ):
        raise RowError("invalid_row_data", "row_data.bounds must be [[lat, lng], [lat, lng]]")
    for key in ZOOM_KEYS:
        zoom = data.get(key)
        if zoom is not None and not (
            isinstance(zoom, int) and not isinstance(zoom, bool) and 0 <= zoom <= 30
        ):
            raise RowError("invalid_row_data", f"row_data.{key} must be a whole number 0-30")
    epsg = data.get("epsg")
    if epsg is not None and not isinstance(epsg, str):
        raise RowError("invalid_row_data", "row_data.epsg must be a string such as EPSG4326")


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key(value: Any, name: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(f"invalid_{name}", f"{name} must be a string, not {type(value).__name__}")
    text = str(value)
    if len(text) > limit:
        raise RowError(
            f"invalid_{name}", f"{name} is {len(text)} characters long; the limit is {limit}"
        )
    return text


def _metadata(fields: Any, schema: Schema) -> tuple[str | None, list[Any]]:
    if fields is None or fields == []:
        return None, []
    if isinstance(fields, dict):
        fields = [fields]
    if not isinstance(fields, list):
        raise RowError(
            "invalid_metadata", "metadata_fields must be a list of {name or schema_id, value}"
        )
    stored, values, seen = [], [], set()
    for entry in fields:
        if not isinstance(entry, dict) or "value" not in entry:
            raise RowError(
                "invalid_metadata",
                f"metadata entry {entry!r} needs a name or schema_id and a value",
            )
        f = schema.resolve(entry.get("schema_id") or entry.get("schemaId"), entry.get("name"))
        label = entry.get("name") or entry.get("schema_id") or entry.get("schemaId")
        if f is None:
            raise RowError("invalid_metadata", f"unknown metadata field {label!r}")
        if f.id in seen:
            raise RowError("invalid_metadata", f"metadata field {f.name!r} is given twice")
        seen.add(f.id)
        try:
            value, text, number = coerce(f, entry["value"])
        except ValueError as exc:
            raise RowError("invalid_metadata", f"metadata field {f.name!r}: {exc}") from None
        stored.append({"schema_id": f.id, "name": f.name, "value": value})
        values.append((f.id, text, number))
    return _dumps(stored), values


def _attachments(value: Any) -> str | None:
    if value is None or value == []:
        return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowError("invalid_attachment", "attachments must be a list of {type, value}")
    out = []
    for i, att in enumerate(value):
        if not isinstance(att, dict):
            raise RowError("invalid_attachment", f"attachment {i} must be an object")
        kind = att.get("type")
        if not isinstance(kind, str) or kind.strip().upper() not in ATTACHMENT_TYPES:
            raise RowError(
                "invalid_attachment",
                f"attachment {i} has unknown type {kind!r}; "
                "expected one of " + ", ".join(ATTACHMENT_TYPES),
            )
        content = att.get("value")
        if not isinstance(content, str) or not content:
            raise RowError("invalid_attachment", f"attachment {i} needs a non-empty string value")
        clean = {"type": kind.strip().upper(), "value": content}
        if att.get("name") is not None:
            if not isinstance(att["name"], str):
                raise RowError("invalid_attachment", f"attachment {i} name must be a string")
            clean["name"] = att["name"]
        out.append(clean)
    return _dumps(out)


def _media_attributes(value: Any) -> str | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise RowError("invalid_media_attributes", "media_attributes must be an object")
    clean = dict(value)
    for key in NUMERIC_ATTRIBUTES:
        raw = clean.get(key)
        if isinstance(raw, str):
            try:
                clean[key] = float(raw) if "." in raw else int(raw)
            except ValueError:
                raise RowError(
                    "invalid_media_attributes", f"media_attributes.{key} {raw!r} is not a number"
                ) from None
    return _dumps(clean)
