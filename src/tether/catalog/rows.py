"""What makes a valid data row: one function that turns a user's row (a dict in the
Labelbox shape, as ``catalog.manifests`` reads it) into the values tether stores, or a
``RowError`` naming the field and the reason. Imports, sync and row updates (PATCH) all call
``normalize``, so a rule holds on every path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tether.catalog.media import (
    LOCAL_FILES_URI,
    MEDIA_TYPES,
    compatible,
    infer_for_task,
    is_tile_template,
    is_uri,
    media_type_of_uri,
    normal_media_type,
)
from tether.catalog.metadata_schema import Schema

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

# Composite row_data, in snake_case and in Labelbox's camelCase (either spelling, not both).
PDF_KEYS = ("pdf_url", "pdfUrl")
TEXT_LAYER_KEYS = ("text_layer_url", "textLayerUrl")
TILE_KEYS = ("tile_layer_url", "tileLayerUrl")
MIN_ZOOM_KEYS = ("min_zoom", "minZoom")
MAX_ZOOM_KEYS = ("max_zoom", "maxZoom")
MAX_NATIVE_ZOOM_KEYS = ("max_native_zoom", "maxNativeZoom")
TILE_SIZE_KEYS = ("tile_size", "tileSize")
ALTERNATIVE_LAYER_KEYS = ("alternative_layers", "alternativeLayers")
CONVERSATION_KEYS = ("conversationalData", "messages")
EPSG_CODES = ("EPSG4326", "EPSG3857", "SIMPLEPIXEL")
MAX_ZOOM = 30


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
    metadata_values: list[tuple[int, str | None, float | None]]  # (field key, text, number)
    attachments: str | None
    extra: str | None


def _dumps(value: Any, what: str = "row") -> str:
    """JSON text of a value; no string in it may hold NUL (PostgreSQL text cannot)."""
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # a lone surrogate, an integer beyond 64 bits ...
        raise RowError(
            "invalid_value", f"{what} holds a value tether cannot store: {exc}"
        ) from None
    # orjson writes NUL as \u0000; a backslash written before "u0000" is doubled (\\u0000).
    if "\\u0000" in text and has_nul(value):
        raise RowError(
            "invalid_value",
            f"{what} holds a NUL character (\\u0000), which tether cannot store; remove it",
        )
    return text


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys too) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v) for v in value)
    return False


def normalize(item: dict[str, Any], schema: Schema, media_type: str | None = None) -> NormalRow:
    """Validate one row. ``media_type`` overrides the row's own (an import-wide choice)."""
    get = item.get
    row_data = get("row_data")
    kind = _media_type(media_type or get("media_type"), row_data)
    global_key = _key(get("global_key"), "global_key", MAX_GLOBAL_KEY)
    external_id = _key(get("external_id"), "external_id", MAX_EXTERNAL_ID)
    meta_json, meta_values = _metadata(get("metadata_fields"), schema)
    extra = get("extra")
    return NormalRow(
        global_key,
        external_id,
        kind,
        _dumps(row_data, "row_data"),
        _media_attributes(get("media_attributes")),
        meta_json,
        meta_values,
        _attachments(get("attachments")),
        _dumps(extra, "the row's other keys") if extra else None,
    )


def _media_type(given: Any, row_data: Any) -> str:
    if row_data is None or (isinstance(row_data, str) and not row_data.strip()):
        raise RowError("missing_row_data", "row_data is missing or empty")
    if isinstance(row_data, str):
        uri = is_uri(row_data)
        if row_data.endswith("/") or "/?" in row_data:
            _check_folder(row_data, uri)
        if uri:
            inferred = (
                "TMS_GEO"
                if "{" in row_data and is_tile_template(row_data)
                else media_type_of_uri(row_data)
            )
            strict = inferred is not None  # a URI whose extension names its kind
        else:
            inferred, strict = "TEXT", False  # inline text, or a path we cannot place
    elif isinstance(row_data, dict):
        if not row_data:
            raise RowError("missing_row_data", "row_data is an empty object")
        inferred, strict = _composite_kind(row_data)
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
    if not isinstance(given, str):
        raise RowError(
            "invalid_media_type",
            f"unknown media_type {given!r}; expected one of " + ", ".join(MEDIA_TYPES),
        )
    try:
        chosen = normal_media_type(given)
    except ValueError as exc:
        raise RowError("invalid_media_type", str(exc)) from None
    if strict and inferred is not None and not compatible(inferred, chosen):
        what = "an object" if isinstance(row_data, dict) else "a URI"
        raise RowError(
            "media_type_mismatch",
            f"media_type {chosen} contradicts row_data, which is {what} of a {inferred} asset",
        )
    return chosen


def _check_folder(value: str, uri: bool) -> None:
    """``gs://bucket/videos/`` or ``images/`` name folders (an http(s) URL ending in / is a
    web page, which may be a row of its own)."""
    path = value.removeprefix(LOCAL_FILES_URI).split("?", 1)[0]
    if not path.endswith("/") or path[:8].lower().startswith(("http://", "https://")):
        return
    if uri or not any(ch in value for ch in " \t\n"):
        raise RowError(
            "invalid_row_data",
            f"row_data {value!r} is a folder (it ends with /), not a file; "
            "list the files in it instead",
        )


def _composite_kind(data: dict[str, Any]) -> tuple[str, bool]:
    """The media type of an object, and whether it is certain: a PDF, tiled imagery or a
    conversation object is nothing else; a Label Studio data dict may be shown as anything."""
    if _one(data, PDF_KEYS) is not None:
        _require_url(data, PDF_KEYS)
        if _one(data, TEXT_LAYER_KEYS) is not None:
            _require_url(data, TEXT_LAYER_KEYS)
        return "PDF", True
    if _one(data, TILE_KEYS) is not None:
        _check_tiles(data)
        return "TMS_GEO", True
    messages = _one(data, CONVERSATION_KEYS)
    if messages is not None:
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise RowError(
                "invalid_row_data", "conversationalData must be a list of message objects"
            )
        return "CONVERSATIONAL", True
    return infer_for_task(data), False


def _one(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The value under one of the spellings ``keys``; both given is an error."""
    first = data.get(keys[0])
    second = data.get(keys[1]) if len(keys) > 1 else None
    if first is not None and second is not None:
        raise RowError(
            "duplicate_field",
            f"row_data gives {keys[0]} twice (as {keys[0]} and {keys[1]}); keep one",
        )
    return second if first is None else first


def _require_url(data: dict[str, Any], keys: tuple[str, ...], where: str = "row_data") -> None:
    value = _one(data, keys)
    if not isinstance(value, str) or not value.strip():
        raise RowError("invalid_row_data", f"{where}.{keys[0]} must be a non-empty URL")


def _check_tiles(data: dict[str, Any]) -> None:
    _require_url(data, TILE_KEYS)
    epsg = data.get("epsg")
    code = None
    if epsg is not None:
        code = epsg.replace(":", "").upper() if isinstance(epsg, str) else None
        if code not in EPSG_CODES:
            raise RowError(
                "invalid_row_data",
                f"row_data.epsg {epsg!r} is not one of " + ", ".join(EPSG_CODES),
            )
    bounds = data.get("bounds")
    if bounds is not None:
        _check_bounds(bounds, code)
    zooms = []
    for keys in (MIN_ZOOM_KEYS, MAX_ZOOM_KEYS, MAX_NATIVE_ZOOM_KEYS):
        zoom = _one(data, keys)
        if zoom is not None and not (_is_int(zoom) and 0 <= zoom <= MAX_ZOOM):
            raise RowError(
                "invalid_row_data", f"row_data.{keys[0]} must be a whole number 0-{MAX_ZOOM}"
            )
        zooms.append(zoom)
    if zooms[0] is not None and zooms[1] is not None and zooms[0] > zooms[1]:
        raise RowError(
            "invalid_row_data",
            f"row_data.min_zoom {zooms[0]} is larger than row_data.max_zoom {zooms[1]}",
        )
    size = _one(data, TILE_SIZE_KEYS)
    if size is not None and not (_is_int(size) and size > 0):
        raise RowError("invalid_row_data", "row_data.tile_size must be a positive whole number")
    layers = _one(data, ALTERNATIVE_LAYER_KEYS)
    if layers is not None:
        if not isinstance(layers, list):
            raise RowError(
                "invalid_row_data",
                "row_data.alternative_layers must be a list of {tile_layer_url, name}",
            )
        for i, layer in enumerate(layers):
            where = f"row_data.alternative_layers[{i}]"
            if not isinstance(layer, dict):
                raise RowError("invalid_row_data", f"{where} must be an object")
            _require_url(layer, TILE_KEYS, where)
            if layer.get("name") is not None and not isinstance(layer["name"], str):
                raise RowError("invalid_row_data", f"{where}.name must be a string")


def _check_bounds(bounds: Any, epsg: str | None) -> None:
    if not (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(p, list) and len(p) == 2 and all(_is_num(c) for c in p) for p in bounds)
    ):
        raise RowError("invalid_row_data", "row_data.bounds must be [[lat, lng], [lat, lng]]")
    (a0, a1), (b0, b1) = bounds
    if a0 == b0 or a1 == b1:
        raise RowError(
            "invalid_row_data", f"row_data.bounds {bounds} are equal on one axis; no area is left"
        )
    if epsg in (None, "EPSG4326") and not (
        all(-90 <= p[0] <= 90 and -180 <= p[1] <= 180 for p in bounds)  # [lat, lng]
        or all(-180 <= p[0] <= 180 and -90 <= p[1] <= 90 for p in bounds)  # [lng, lat]
    ):
        raise RowError(
            "invalid_row_data",
            f"row_data.bounds {bounds} are not degrees: [[lat, lng], [lat, lng]] with lat "
            "-90..90 and lng -180..180 (EPSG4326)",
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key(value: Any, name: str, limit: int) -> str | None:
    if type(value) is str and value and len(value) <= limit and "\x00" not in value:
        return value  # (the usual key: what the checks below let through as it is)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(f"invalid_{name}", f"{name} must be a string, not {type(value).__name__}")
    text = str(value)
    if "\x00" in text:
        raise RowError(f"invalid_{name}", f"{name} holds a NUL character")
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
    stored: list[str] = []
    values: list[tuple[int, str | None, float | None]] = []
    seen: set[int] = set()
    check = schema.check
    for entry in fields:
        if not isinstance(entry, dict) or "value" not in entry:
            raise RowError(
                "invalid_metadata",
                f"metadata entry {entry!r} needs a name or schema_id and a value",
            )
        get = entry.get
        name = get("name") or get("schema_name")
        schema_id = get("schema_id") or get("schemaId")
        try:
            checked = check(schema_id, name, entry["value"])
        except ValueError as exc:
            f = schema.resolve(schema_id, name)
            label = f.name if f is not None else name or schema_id
            raise RowError("invalid_metadata", f"metadata field {label!r}: {exc}") from None
        if checked is None:
            raise RowError("invalid_metadata", f"unknown metadata field {name or schema_id!r}")
        f, entry_json, text, number = checked
        key = f.key
        if key in seen:
            raise RowError("invalid_metadata", f"metadata field {f.name!r} is given twice")
        seen.add(key)
        stored.append(entry_json)
        values.append((key, text, number))
    return "[" + ",".join(stored) + "]", values


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
        get = att.get
        kind = get("type")
        upper = kind if kind in ATTACHMENT_TYPES else None  # (as written, the usual case)
        if upper is None and isinstance(kind, str):
            upper = kind.strip().upper()
        if upper not in ATTACHMENT_TYPES:
            raise RowError(
                "invalid_attachment",
                f"attachment {i} has unknown type {kind!r}; "
                "expected one of " + ", ".join(ATTACHMENT_TYPES),
            )
        content = get("value")
        if not isinstance(content, str) or not content:
            raise RowError("invalid_attachment", f"attachment {i} needs a non-empty string value")
        clean = {"type": upper, "value": content}
        name = get("name")
        if name is not None:
            if not isinstance(name, str):
                raise RowError("invalid_attachment", f"attachment {i} name must be a string")
            clean["name"] = name
        out.append(clean)
    return _dumps(out, "attachments")


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
    return _dumps(clean, "media_attributes")
