"""Request bodies of the HTTP API (they shape the OpenAPI document). The response models live
in ``tether.schemas``, shared with the SDK; they are re-exported here for the routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tether.schemas import (  # noqa: F401 - re-exported for the routes
    Annotation,
    AnnotationList,
    AnnotationPage,
    AssignResults,
    ClearResults,
    DataRow,
    DataRowPage,
    Dataset,
    DatasetDeletion,
    DatasetList,
    DeleteResults,
    ErrorResponse,
    Health,
    ItemResult,
    Job,
    JobError,
    JobErrorPage,
    JobList,
    KeyLookups,
    LabelConfigCheck,
    LabelConfigTemplates,
    MetadataField,
    MetadataSchema,
    Prediction,
    PredictionList,
    Project,
    ProjectList,
    RowCount,
    Storage,
    StorageCheck,
    StorageList,
    StoredObject,
    Task,
    TaskPage,
    UploadDestination,
)
from tether.sync import fields as storage_fields

# The id columns' ranges (BIGINT data row ids, INTEGER dataset and error ids): larger numbers
# name nothing, and the databases refuse to compare with them.
MAX_BIGINT = 2**63 - 1
MAX_INT = 2**31 - 1
RowId = Annotated[int, Field(ge=-MAX_BIGINT - 1, le=MAX_BIGINT)]


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds a NUL character (PostgreSQL refuses them
    in text)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v) for v in value)
    if isinstance(value, BaseModel):
        return has_nul(value.__dict__)
    return False


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _no_nul(self) -> Body:
        if has_nul(self.__dict__):
            raise ValueError("text must not contain NUL (\\u0000) characters")
        return self


class DatasetIn(Body):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""


class DatasetPatch(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = None


class ProjectIn(Body):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    label_config: str | None = Field(
        None, description="Label Studio's XML labeling config; or give `template`"
    )
    template: str | None = Field(
        None, description="a shipped label config (`GET /projects/templates`) instead"
    )

    @model_validator(mode="after")
    def _one_config(self) -> ProjectIn:
        if (self.label_config is None) == (self.template is None):
            raise ValueError("give label_config or template (one of them)")
        return self


class LabelConfigIn(Body):
    label_config: str = Field(max_length=512 * 1024)


class ProjectPatch(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = None
    label_config: str | None = None


RESULT_HELP = (
    "Label Studio regions: each with from_name (a control tag of the config), to_name (an "
    "object tag it labels), type (one it makes) and value; a region that does not fit is "
    "`region_mismatch`, naming its index"
)


class AnnotationIn(Body):
    result: list[Any] = Field(description=RESULT_HELP)
    lead_time: float | None = Field(None, ge=0, allow_inf_nan=False, description="seconds spent")
    was_cancelled: bool = Field(False, description="a skip (its result is usually empty)")
    ground_truth: bool = False
    parent_prediction: int | None = Field(
        None,
        ge=1,
        le=MAX_INT,
        description="the task's prediction it started from (Label Studio's field)",
    )


class AnnotationPatch(Body):
    result: list[Any] | None = Field(None, description=RESULT_HELP)
    lead_time: float | None = Field(None, ge=0, allow_inf_nan=False)
    was_cancelled: bool | None = None
    ground_truth: bool | None = None
    version: int | None = Field(
        None,
        ge=1,
        le=MAX_INT,
        description="change it only if it still has this version (else 409 version_mismatch)",
    )


class DataRowPatch(Body):
    row_data: str | dict[str, Any] | None = None
    global_key: str | None = None
    external_id: str | None = None
    media_type: str | None = None
    media_attributes: dict[str, Any] | None = None
    metadata_fields: list[dict[str, Any]] | None = Field(
        default=None, description="the row's whole metadata: fields not listed are dropped"
    )
    metadata_fields_set: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=1000,
        description="{name or schema_id, value} entries to add or change; other fields stay",
    )
    metadata_fields_remove: list[str] | None = Field(
        default=None, max_length=1000, description="names or schema ids of fields to remove"
    )
    attachments: list[dict[str, Any]] | None = None


class UploadDestinationIn(Body):
    dataset: int | str | None = Field(
        None, description="the dataset the files are for (id or name); none: no dataset"
    )
    storage_id: int | None = Field(
        None,
        ge=1,
        le=MAX_INT,
        description="a source storage of the dataset; none: the dataset's one source storage, "
        "else tether's own folder of uploads for the organization",
    )


class GlobalKeys(Body):
    global_keys: list[str] = Field(max_length=10_000)


class DeleteRows(Body):
    ids: list[RowId] = Field(default_factory=list, max_length=10_000)
    global_keys: list[str] = Field(default_factory=list, max_length=10_000)


class Assignment(BaseModel):
    data_row_id: Any = None
    global_key: Any = None

    @field_validator("data_row_id")
    @classmethod
    def _in_range(cls, value: Any) -> Any:
        if isinstance(value, int) and not -MAX_BIGINT - 1 <= value <= MAX_BIGINT:
            raise ValueError(f"{value} is not a data row id")
        return value


class Assignments(Body):
    assignments: list[Assignment] = Field(max_length=10_000)


class FieldIn(Body):
    name: str
    kind: str = Field(
        description="string, number, datetime, enum or embedding",
        json_schema_extra={"enum": ["string", "number", "datetime", "enum", "embedding"]},
    )
    options: list[str] | None = None
    dimension: int | None = None


class FieldPatch(Body):
    name: str | None = None
    add_options: list[str] | None = None


# --- storages: one body per type (a `type` field chooses), the same options for all --------


class StorageOptionsIn(Body, storage_fields.Options):
    # A target's options (storage_fields.TargetOptions); refused on a source.
    can_delete_objects: bool | None = Field(
        None, description="target: an export deletes the objects of deleted annotations (false)"
    )
    auto_export: bool | None = Field(
        None, description="target: export shortly after each annotation save (true)"
    )


class _SourceIn(StorageOptionsIn):
    """A source storage of ``dataset_id`` (rows come in), or a target storage of
    ``project_id`` (annotations go out): give one of them. A target takes only the options
    ``title``, ``can_delete_objects`` and ``auto_export``."""

    dataset_id: int | None = Field(
        None, ge=1, le=MAX_INT, description="a source: the dataset the rows go into"
    )
    project_id: int | None = Field(
        None, ge=1, le=MAX_INT, description="a target: the project whose annotations go out"
    )
    role: Literal["source", "target"] | None = Field(
        None, description="inferred: target with project_id, source with dataset_id"
    )


class S3StorageIn(_SourceIn, storage_fields.S3Fields):
    type: Literal["s3"]


class GCSStorageIn(_SourceIn, storage_fields.GCSFields):
    type: Literal["gcs"]


class AzureBlobStorageIn(_SourceIn, storage_fields.AzureBlobFields):
    type: Literal["azure_blob"]


class RedisStorageIn(_SourceIn, storage_fields.RedisFields):
    type: Literal["redis"]


class LocalStorageIn(_SourceIn, storage_fields.LocalFields):
    type: Literal["local"]


StorageIn = Annotated[
    S3StorageIn | GCSStorageIn | AzureBlobStorageIn | RedisStorageIn | LocalStorageIn,
    Field(discriminator="type"),
]


class StoragePatch(Body):
    """Fields to change; the others stay. A secret field given replaces the stored one,
    given as null it is removed, left out it is kept. The type cannot change."""

    type: str | None = Field(None, description="if given, must be the storage's own type")
    # config fields (each type takes its own; see the create bodies)
    bucket: str | None = None
    container: str | None = None
    prefix: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    role_arn: str | None = None
    service_account_json: str | None = None
    account_name: str | None = None
    account_key: str | None = None
    host: str | None = None
    port: int | None = None
    password: str | None = None
    db: int | None = None
    path: str | None = None
    # options
    title: str | None = None
    regex_filter: str | None = None
    recursive: bool | None = None
    treat_every_object_as_source_file: bool | None = None
    use_signed_urls: bool | None = None
    signed_url_ttl_minutes: int | None = None
    remove_missing: bool | None = None
    sync_every_minutes: int | None = None
    can_delete_objects: bool | None = None
    auto_export: bool | None = None


class AddTasksIn(Body):
    """Which rows join the project: the rows the filters match (a dataset, metadata filters,
    a media type: as data row listing takes them), and/or rows named by id or global key
    (with filters, a named row must match them too)."""

    dataset: int | str | None = Field(None, description="a dataset's id or name")
    metadata: list[str] = Field(
        default_factory=list, description="`FIELD:OP:VALUE` filters, as `GET /data-rows` takes"
    )
    media_type: str | None = None
    data_row_ids: list[RowId] | None = Field(None, max_length=100_000)
    global_keys: list[str] | None = Field(None, max_length=100_000)
