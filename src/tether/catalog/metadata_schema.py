"""The metadata schema of an organization: reserved fields plus custom ones, and the rules
that turn a user-supplied value into its stored forms.

Reserved fields carry Labelbox's schema ids, so manifests exported from Labelbox keep their
meaning here.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tether.accounts.roles import require_admin
from tether.db import ids
from tether.db.tables import data_row_metadata, metadata_fields
from tether.errors import Conflict, Invalid, NotFound

KINDS = ("string", "number", "datetime", "enum", "embedding")
MAX_STRING = 4096
MAX_INT = 2**63 - 1
DATETIME_HINT = "an ISO 8601 datetime such as 2024-05-01T12:30:00Z"


@dataclass(frozen=True)
class Field:
    id: str
    name: str
    kind: str
    key: int  # what the value tables store for the field (see tables.metadata_fields)
    options: tuple[tuple[str, str], ...] = ()  # (option id, option name) for enums
    dimension: int | None = None
    reserved: bool = False
    _option_by_key: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for option_id, name in self.options:
            self._option_by_key[option_id] = name
            self._option_by_key[name] = name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "reserved": self.reserved,
        }
        if self.kind == "enum":
            out["options"] = [{"id": i, "name": n} for i, n in self.options]
        if self.kind == "embedding":
            out["dimension"] = self.dimension
        return out


RESERVED = (
    Field("cko8s9r5v0001h2dk9elqdidh", "tag", "string", 1, reserved=True),
    Field(
        "cko8sbczn0002h2dkdaxb5kal",
        "split",
        "enum",
        2,
        reserved=True,
        options=(
            ("cko8sbscr0003h2dk04w86hof", "train"),
            ("cko8sc2yr0004h2dk69aj5x63", "valid"),
            ("cko8scbz70005h2dkastwhgqt", "test"),
        ),
    ),
    Field("cko8sdzv70006h2dk8jg64zvb", "captureDateTime", "datetime", 3, reserved=True),
    Field("ckpyije740000yxdk81pbgjdc", "embedding", "embedding", 4, dimension=128, reserved=True),
)
RESERVED_NAMES = {f.name for f in RESERVED}


_SCALARS = (str, int, float)
_NAMES = (str, type(None))
MEMO_LIMIT = 100_000
# (field, the entry as stored: JSON of {schema_id, name, value}, text value, number value)
Checked = tuple[Field, str, str | None, float | None]


class Schema:
    """All fields an organization can use, looked up by id or by name."""

    def __init__(self, fields: list[Field]) -> None:
        self.fields = fields
        self.by_id = {f.id: f for f in fields}
        self.by_name = {f.name: f for f in fields}
        self._checked: dict[tuple[Any, ...], Checked] = {}

    def check(self, schema_id: Any, name: Any, value: Any) -> Checked | None:
        """The field a metadata entry names (None: no such field), the entry as stored, and
        its index values. Remembered for scalar values: an import's splits, tags and enum
        values recur in row after row. Raises ValueError as ``coerce`` does."""
        memo = None
        if type(value) in _SCALARS and type(schema_id) in _NAMES and type(name) in _NAMES:
            memo = (schema_id, name, type(value), value)  # the type: True == 1, 1 == 1.0
            if (hit := self._checked.get(memo)) is not None:
                return hit
        f = self.resolve(schema_id, name)
        if f is None:
            return None
        stored, text_value, number = coerce(f, value)
        entry = {"schema_id": f.id, "name": f.name, "value": stored}
        try:
            checked = (f, orjson.dumps(entry).decode(), text_value, number)
        except orjson.JSONEncodeError as exc:  # a lone surrogate ...
            raise ValueError(f"holds a value tether cannot store: {exc}") from None
        if memo is not None and len(self._checked) < MEMO_LIMIT:
            self._checked[memo] = checked
        return checked

    def resolve(self, schema_id: Any, name: Any) -> Field | None:
        """By schema id when this organization knows it, else by name (ids of custom fields
        differ between organizations, so an export from one still imports into another)."""
        found = self.by_id.get(schema_id) if isinstance(schema_id, str) else None
        if found is None and isinstance(name, str):
            found = self.by_name.get(name)
        return found


def load_schema(conn: Connection, org_id: int) -> Schema:
    rows = conn.execute(
        select(metadata_fields)
        .where(metadata_fields.c.org_id == org_id)
        .order_by(metadata_fields.c.name)
    ).mappings()
    return Schema([*RESERVED, *(_field_from_row(r) for r in rows)])


def _field_from_row(row: Any) -> Field:
    options = tuple((o["id"], o["name"]) for o in orjson.loads(row["options"] or "[]"))
    return Field(row["id"], row["name"], row["kind"], row["key"], options, row["dimension"])


def coerce(f: Field, value: Any) -> tuple[Any, str | None, float | None]:
    """Check one value; return (its JSON form, its text index value, its number index value).

    Raises ValueError with a message fit for the user.
    """
    kind = f.kind
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a string, got {_type_name(value)}")
        text = value if isinstance(value, str) else _number_text(value)
        if "\x00" in text:
            raise ValueError("holds a NUL character")
        if len(text) > MAX_STRING:
            raise ValueError(f"is longer than {MAX_STRING} characters")
        return text, text, None
    if kind == "number":
        number = _to_number(value)
        return number, None, float(number)
    if kind == "datetime":
        moment = _to_datetime(value)
        return moment.isoformat().replace("+00:00", "Z"), None, moment.timestamp()
    if kind == "enum":
        name = f._option_by_key.get(value) if isinstance(value, str) else None
        if name is None:
            choices = ", ".join(n for _i, n in f.options)
            raise ValueError(f"{value!r} is not one of: {choices}")
        return name, name, None
    return _to_vector(value, f.dimension), None, None


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, str):
        try:
            value = float(value.strip()) if any(c in value for c in ".eE") else int(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    if not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise ValueError(f"{value} is out of range; whole numbers need to fit in 64 bits")
    return value


def _to_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected {DATETIME_HINT}, got {_type_name(value)}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not ISO 8601; expected {DATETIME_HINT}") from None
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        moment.timestamp()
    except (OverflowError, ValueError):
        raise ValueError(f"{value!r} is out of the range of datetimes") from None
    return moment


def _to_vector(value: Any, dimension: int | None) -> list[float]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of numbers, got {_type_name(value)}")
    if dimension is not None and len(value) != dimension:
        raise ValueError(f"expected {dimension} numbers, got {len(value)}")
    try:
        return [float(_to_number(v)) for v in value]
    except ValueError as exc:
        raise ValueError(f"embedding holds a bad value: {exc}") from None


# --- schema management ------------------------------------------------------------------


def list_fields(conn: Connection, org_id: int) -> list[Field]:
    return load_schema(conn, org_id).fields


def check_name(name: str) -> str:
    """A new field name, stripped: 1 to 200 characters and no ``:``, which separates a row
    filter's parts (``FIELD:OP:VALUE``). A field named with ``:`` before this rule is
    filtered by its id."""
    name = name.strip()
    if not name or len(name) > 200:
        raise Invalid("a field name needs 1 to 200 characters")
    if ":" in name:
        raise Invalid(
            f"a field name must not contain ':' (row filters are FIELD:OP:VALUE); got {name!r}"
        )
    return name


def create_field(
    conn: Connection,
    org_id: int,
    name: str,
    kind: str,
    options: list[str] | None = None,
    dimension: int | None = None,
    *,
    role: str,
) -> Field:
    require_admin(role, "change the metadata schema")
    name = check_name(name)
    if kind not in KINDS:
        raise Invalid(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if name in RESERVED_NAMES:
        raise Conflict(f"{name!r} is a reserved field")
    opts = _new_options(options or []) if kind == "enum" else []
    if kind == "enum" and not opts:
        raise Invalid("an enum field needs at least one option")
    if kind == "embedding" and (dimension is None or not 1 <= dimension <= 4096):
        raise Invalid("an embedding field needs a dimension from 1 to 4096")
    if conn.execute(
        select(metadata_fields.c.id).where(
            metadata_fields.c.org_id == org_id, metadata_fields.c.name == name
        )
    ).first():
        raise Conflict(f"a metadata field named {name!r} exists already")
    field_id = "cmf" + secrets.token_hex(11)
    try:
        with conn.begin_nested():  # a concurrent create of the same name loses here
            conn.execute(
                insert(metadata_fields).values(
                    id=field_id,
                    key=ids.reserve(conn, "metadata_fields"),  # from 101 (migration 0003)
                    org_id=org_id,
                    name=name,
                    kind=kind,
                    options=orjson.dumps(opts).decode(),
                    dimension=dimension if kind == "embedding" else None,
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        raise Conflict(f"a metadata field named {name!r} exists already") from None
    return get_field(conn, org_id, field_id)


def _new_options(names: list[str]) -> list[dict[str, str]]:
    clean = [n.strip() for n in names if isinstance(n, str) and n.strip()]
    if len(set(clean)) != len(clean):
        raise Invalid("enum options must be distinct")
    return [{"id": "cmo" + secrets.token_hex(11), "name": n} for n in clean]


def get_field(conn: Connection, org_id: int, id_or_name: str) -> Field:
    found = load_schema(conn, org_id).resolve(id_or_name, id_or_name)
    if found is None:
        raise NotFound(f"no metadata field {id_or_name!r}")
    return found


def update_field(
    conn: Connection,
    org_id: int,
    id_or_name: str,
    name: str | None = None,
    add_options: list[str] | None = None,
    *,
    role: str,
) -> Field:
    """Rename a custom field or add options to a custom enum (existing values stay valid)."""
    require_admin(role, "change the metadata schema")
    f = get_field(conn, org_id, id_or_name)
    if f.reserved:
        raise Conflict(f"{f.name!r} is a reserved field and cannot change")
    values: dict[str, Any] = {}
    if name is not None and check_name(name) != f.name:
        if name.strip() in RESERVED_NAMES or load_schema(conn, org_id).by_name.get(name.strip()):
            raise Conflict(f"a metadata field named {name.strip()!r} exists already")
        values["name"] = name.strip()
    if add_options:
        if f.kind != "enum":
            raise Invalid("only enum fields have options")
        existing = [{"id": i, "name": n} for i, n in f.options]
        fresh = _new_options([o for o in add_options if o not in {n for _i, n in f.options}])
        values["options"] = orjson.dumps(existing + fresh).decode()
    if values:
        try:
            with conn.begin_nested():
                conn.execute(
                    update(metadata_fields).where(metadata_fields.c.id == f.id).values(**values)
                )
        except IntegrityError:
            taken = values.get("name")
            raise Conflict(f"a metadata field named {taken!r} exists already") from None
    return get_field(conn, org_id, f.id)


def delete_field(conn: Connection, org_id: int, id_or_name: str, *, role: str) -> None:
    """Delete a custom field that no data row uses (say which rows still do otherwise)."""
    require_admin(role, "change the metadata schema")
    f = get_field(conn, org_id, id_or_name)
    if f.reserved:
        raise Conflict(f"{f.name!r} is a reserved field and cannot be deleted")
    in_use = conn.execute(
        select(func.count())
        .select_from(data_row_metadata)
        .where(data_row_metadata.c.org_id == org_id, data_row_metadata.c.field_key == f.key)
    ).scalar_one()
    if in_use:
        raise Conflict(
            f"{in_use} data rows still use {f.name!r}; clear it from them first",
            details={"rows": in_use},
        )
    conn.execute(delete(metadata_fields).where(metadata_fields.c.id == f.id))
