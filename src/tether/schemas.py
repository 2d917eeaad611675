"""The public response models of the HTTP API, shared by the server and the SDK.

This module imports only pydantic and the standard library, so the SDK can use it without the
server's dependencies. The server renders its answers with these models (they shape the OpenAPI
document); the SDK parses answers into them. Every model also reads like the dict it replaces
(``row["id"]``, ``row.get("global_key")``, ``"id" in row``, ``row == {...}``), so scripts
written against the SDK's former dict results keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """A response model that also answers the read-only part of the mapping protocol."""

    def __getitem__(self, key: str) -> Any:
        if key in type(self).model_fields and key in self.model_fields_set:
            return getattr(self, key)
        extra = self.__pydantic_extra__ or {}
        if key in extra:
            return extra[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        """The keys the answer held (an optional field the server left out is not one)."""
        sent = self.model_fields_set
        return [
            *(k for k in type(self).model_fields if k in sent),
            *(self.__pydantic_extra__ or {}),
        ]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.keys()

    def __len__(self) -> int:
        return len(self.keys())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping) and not isinstance(other, BaseModel):
            return self.to_dict() == dict(other)
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, as the server sent it."""
        return self.model_dump(mode="json", exclude_unset=True)


# --- errors ----------------------------------------------------------------------------------


class ErrorBody(Model):
    code: str = Field(description="what happened, e.g. not_found, invalid, global_key_exists")
    message: str = Field(description="a sentence for people")
    details: Any = Field(None, description="more about the error, when there is more to say")


class ErrorResponse(Model):
    """The one shape of every error answer."""

    error: ErrorBody


# --- datasets --------------------------------------------------------------------------------


class Dataset(Model):
    id: int
    name: str
    description: str
    created_at: str | None = Field(description="ISO 8601, UTC")
    updated_at: str | None = Field(description="ISO 8601, UTC")
    created_by: int | None = None
    row_count: int | None = Field(None, description="only when asked for (`with_count=true`)")


class DatasetList(Model):
    items: list[Dataset]


# --- data rows -------------------------------------------------------------------------------


class MetadataValue(Model):
    schema_id: str
    name: str
    value: str | int | float | list[int | float] = Field(
        description="text, a number, an ISO 8601 time or an embedding (a list of numbers)"
    )


class Attachment(Model):
    type: str
    value: str
    name: str | None = None


class UnresolvedURI(Model):
    uri: str = Field(description="the URI as the row stores it (left as it is)")
    at: str = Field(
        description="where the row holds it, as a JSON Pointer: `/row_data`, "
        "`/row_data/image`, `/attachments/0/value`"
    )
    reason: str = Field(description="why tether cannot make a URL of it")


class ResolvedRow(Model):
    """A row's assets as a browser loads them, beside the stored URIs (which never change):
    `row_data` and `attachments` in the row's own shape, each URI (`s3://`, `gs://`,
    `azure-blob://`, `redis://`, `/data/local-files/?d=`, `/data/upload/`) replaced by a URL
    -- the store's signed HTTPS URL when the storage signs (`use_signed_urls`), else a tether
    URL with a short-lived token (`/api/v1/storages/{id}/proxy?key=&token=`,
    `/data/local-files/?d=&token=`, relative to this server). `http(s)://` URLs and inline
    text are as stored; URIs no storage of the row's dataset resolves are as stored and
    listed in `unresolved`."""

    row_data: str | dict[str, Any] = Field(description="row_data with URLs in place of URIs")
    attachments: list[Attachment] = Field(description="attachments with URLs as their values")
    unresolved: list[UnresolvedURI]
    expires_at: str | None = Field(
        description="when the first of these URLs expires (ISO 8601, UTC); null: none expires"
    )


class DataRow(Model):
    """One data row. Fields a source file held besides tether's come along as further keys
    (``additionalProperties``); they never shadow these."""

    model_config = ConfigDict(extra="allow")

    id: int
    dataset_id: int
    global_key: str | None
    external_id: str | None
    media_type: str
    row_data: str | dict[str, Any] = Field(description="a URI or URL, inline text, or an object")
    media_attributes: dict[str, Any]
    metadata_fields: list[MetadataValue]
    attachments: list[Attachment]
    created_by: int | None
    created_at: str | None
    updated_at: str | None
    resolved: ResolvedRow | None = Field(
        None, description="only with `resolve=true`: the row's assets as URLs a browser loads"
    )


class DataRowPage(Model):
    items: list[DataRow]
    next_cursor: int | None = Field(description="pass as `after` for the next page; null: last")


class RowCount(Model):
    count: int
    exact: bool = Field(
        description="false: PostgreSQL's planner estimate (an exact count was slow)"
    )


class ItemResult(Model):
    """The result of one item of a bulk call (delete, assign, clear) or one import error."""

    index: int = Field(description="the item's position in the request")
    id: int | None = Field(None, description="the data row's id, when known")
    global_key: str | None = None
    ok: bool
    code: str | None = Field(None, description="why the item failed, e.g. not_found")
    message: str | None = None


class DeleteResult(ItemResult):
    data_row_id: Any = Field(None, description="the id as given (kept from earlier versions)")
    deleted: bool = Field(description="the same as `ok` (kept from earlier versions)")
    error: str | None = Field(None, description="the same as `message` (kept)")


class AssignResult(ItemResult):
    data_row_id: Any = Field(None, description="the id as given (kept from earlier versions)")
    error: str | None = Field(None, description="the same as `message` (kept)")


class ClearResult(ItemResult):
    error: str | None = Field(None, description="the same as `message` (kept)")


class DeleteResults(Model):
    results: list[DeleteResult]


class AssignResults(Model):
    results: list[AssignResult]


class ClearResults(Model):
    results: list[ClearResult]


class KeyLookup(Model):
    global_key: str
    data_row_id: int | None = Field(description="null when no row has the key")


class KeyLookups(Model):
    results: list[KeyLookup]


# --- jobs ------------------------------------------------------------------------------------


class Progress(Model):
    done: int = Field(description="items done (import: input items; delete_dataset: rows)")
    total: int | None = Field(description="items in all, once known")


class Counts(Model):
    """``failed`` for every kind, and the kind's own tallies: import ``created``, ``updated``;
    delete_dataset ``deleted``; sync ``listed``, ``unchanged``, ``missing`` (objects) and
    ``created``, ``updated``, ``removed`` (data rows); export ``written``, ``unchanged``,
    ``deleted`` (objects of annotations)."""

    model_config = ConfigDict(extra="allow")
    failed: int


class Job(Model):
    """An asynchronous unit of work of some ``kind``: ``import`` (bulk create),
    ``delete_dataset``, ``sync`` (a source storage into its dataset), ``probe`` (media
    attributes) or ``export`` (a project's annotations to a target storage)."""

    id: str
    kind: str
    status: str = Field(
        description="queued, running, completed, completed_with_errors, failed or canceled"
    )
    dataset_id: int | None
    storage_id: int | None = None
    project_id: int | None = None
    format: str | None = Field(description="import: the detected (or given) input format")
    options: dict[str, Any]
    progress: Progress
    counts: Counts
    details: dict[str, Any] = Field(
        default_factory=dict, description="facts the job's kind records (import: format)"
    )
    message: str | None
    cancel_requested: bool = Field(
        False,
        description="a cancel was asked for: the job stops after the chunk being written, "
        "then shows canceled with exactly what was done counted",
    )
    claimed_by: str | None = Field(None, description="the worker running it (or that ran it)")
    lease_until: str | None = Field(
        None, description="the worker's lease on the job: past it, another worker resumes it"
    )
    created_at: str | None
    started_at: str | None = Field(description="when a worker first started it")
    finished_at: str | None


class DatasetDeletion(Job):
    deleted_rows: int = Field(
        description="the rows the dataset held: the job deletes them (kind delete_dataset)"
    )


class JobList(Model):
    items: list[Job]
    next_cursor: str | None = Field(None, description="pass as ``after`` for the next page")


class JobError(ItemResult):
    """One item a job could not take."""

    index: int | None = Field(  # type: ignore[assignment]
        None, description="the item's position in the file"
    )
    ok: bool = False
    item_key: str | None = Field(None, description="what names the item: a row index, a key")
    external_id: str | None = None
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class JobErrorPage(Model):
    items: list[JobError]
    next_cursor: int | None


# --- uploads ---------------------------------------------------------------------------------


class UploadDestination(Model):
    """Where files uploaded for a dataset (or for none) go."""

    storage_id: int = Field(description="the storage the files go into")
    type: str = Field(description="its type: s3, gcs, azure_blob or local")
    managed: bool = Field(
        description="tether's own folder of uploads for the organization (under its data dir)"
    )
    dataset_id: int | None
    key_prefix: str = Field(
        description="what every object key of this upload starts with: the storage's prefix, "
        "or in the managed storage `<dataset id>/` (`files/` for no dataset)"
    )
    max_asset_bytes: int = Field(description="the largest file the server takes")


class StoredObject(Model):
    """One object in a storage, as an upload sees it."""

    storage_id: int
    key: str = Field(description="the object's key in the storage")
    uri: str = Field(description="what a data row stores for it (row_data)")
    size: int
    etag: str | None
    created: bool | None = Field(
        None, description="upload: true when written now, false when it was already there"
    )
    sha256: str | None = Field(None, description="upload: the SHA-256 of the bytes written now")


# --- metadata schema -------------------------------------------------------------------------


class EnumOption(Model):
    id: str
    name: str


class MetadataField(Model):
    id: str
    name: str
    kind: str = Field(description="string, number, datetime, enum or embedding")
    reserved: bool
    options: list[EnumOption] | None = Field(None, description="enum fields only")
    dimension: int | None = Field(None, description="embedding fields only")


class MetadataSchema(Model):
    fields: list[MetadataField]


class Health(Model):
    status: str
    version: str


# --- organization ----------------------------------------------------------------------------


class Organization(Model):
    id: int
    name: str
    external_id: str | None = Field(
        description="What tether passes as sts:ExternalId when it assumes an IAM role of "
        "yours (S3 storages with `role_arn`): put it in the role's trust policy."
    )
    created_at: str


# --- storages --------------------------------------------------------------------------------


class SecretField(StrEnum):
    """The write-only fields of storages (never sent back)."""

    access_key_id = "access_key_id"
    secret_access_key = "secret_access_key"
    session_token = "session_token"
    service_account_json = "service_account_json"
    account_key = "account_key"
    password = "password"


class CheckFinding(Model):
    code: str = Field(
        description="bad_credentials, bucket_not_found, container_not_found, "
        "permission_denied, storage_unreachable, invalid_storage_config, unsafe_url, "
        "role_not_assumable, prefix_empty (a warning), ..."
    )
    message: str = Field(description="what is wrong and what to fix")
    field: str | None = Field(None, description="the field to fix, when one is to blame")


class StorageCheck(Model):
    """The check of a storage: list one page under the prefix, stat and read one byte of
    the first object."""

    ok: bool = Field(description="no errors (warnings do not stop a save)")
    errors: list[CheckFinding]
    warnings: list[CheckFinding]
    sample_key: str | None = Field(None, description="an object the check listed and read")


class Storage(Model):
    """A storage connection. Secret fields (keys, passwords, service-account JSON) are
    write-only: `secret_fields_set` names the ones stored, never their values."""

    id: int
    type: str = Field(description="s3, gcs, azure_blob, redis or local")
    role: str = Field(description="source (rows come in) or target (annotations go out)")
    dataset_id: int | None
    project_id: int | None = None
    config: dict[str, Any] = Field(
        description="the type's non-secret fields: s3 bucket, prefix, region, endpoint_url, "
        "role_arn, external_id; gcs bucket, prefix, endpoint_url; azure_blob container, "
        "prefix, account_name, endpoint_url; redis host, port, db, path; local path"
    )
    secret_fields_set: list[SecretField] = Field(description="names of the secret fields stored")
    title: str
    regex_filter: str | None
    recursive: bool
    treat_every_object_as_source_file: bool
    use_signed_urls: bool
    signed_url_ttl_minutes: int
    remove_missing: bool
    sync_every_minutes: int | None
    can_delete_objects: bool = Field(
        False, description="target: an export deletes the objects of deleted annotations"
    )
    auto_export: bool = Field(True, description="target: export after each annotation save")
    next_sync_at: str | None = Field(None, description="when the schedule syncs next (UTC)")
    last_sync_job_id: str | None = None
    created_by: int | None = None
    created_at: str | None = None
    updated_at: str | None = None
    check: StorageCheck | None = Field(
        None, description="the check run by this create or change (warnings included)"
    )


class StorageList(Model):
    items: list[Storage]


# --- projects --------------------------------------------------------------------------------


class TaskCounts(Model):
    unlabeled: int = 0
    labeled: int = 0
    skipped: int = 0


class Project(Model):
    id: int
    name: str
    description: str
    label_config: str = Field(description="Label Studio's XML labeling config")
    created_by: int | None = None
    created_at: str | None = Field(description="ISO 8601, UTC")
    updated_at: str | None = Field(description="ISO 8601, UTC")
    task_count: int = Field(0, description="tasks in the project")
    task_counts: TaskCounts = Field(default_factory=TaskCounts, description="tasks by status")


class ProjectList(Model):
    items: list[Project]


class LabelConfigTemplate(Model):
    name: str
    label_config: str


class LabelConfigTemplates(Model):
    items: list[LabelConfigTemplate]


# --- facets ----------------------------------------------------------------------------------


class FacetCount(Model):
    value: str
    count: int


class ValueFacet(Model):
    field: str
    kind: str = Field(description="string or enum")
    counts: list[FacetCount] = Field(description="the most frequent values, most first")
    other: int = Field(description="rows holding one of the less frequent values")


class DateBucket(Model):
    start: str
    end: str
    count: int


class DateFacet(Model):
    field: str
    buckets: list[DateBucket]


class Facets(Model):
    dataset_id: int
    values: list[ValueFacet]
    dates: list[DateFacet]


class LabelConfigControl(Model):
    name: str
    tag: str
    to_names: list[str]
    types: list[str] = Field(description="the region types it makes (`type` in a result)")


class LabelConfigObject(Model):
    name: str
    tag: str
    key: str = Field(description="the task data key it shows")


class LabelConfigCheck(Model):
    ok: bool
    message: str | None = Field(None, description="what is wrong, naming the line")
    line: int | None = None
    required_keys: list[str] = Field(
        default_factory=list, description="the task data keys every task needs"
    )
    objects: list[LabelConfigObject] = Field(default_factory=list)
    controls: list[LabelConfigControl] = Field(default_factory=list)


# --- annotations and predictions -------------------------------------------------------------


class Region(Model):
    """One item of a result, as Label Studio writes it: ``id``, ``from_name`` (a control tag
    of the label config), ``to_name`` (the object tag it labels), ``type``, ``value``, and
    ``origin``, ``original_width``, ``original_height``, ``image_rotation``, ``score`` ...
    (a relation: ``from_id``, ``to_id``, ``type: relation``). Kept exactly as given."""

    model_config = ConfigDict(extra="allow")


class Annotation(Model):
    """An annotation in Label Studio's shape (``task``: the task's id, which is its data
    row's), with the data row's id and a ``version`` that grows by one on every edit."""

    id: int
    result: list[Region] = Field(description="Label Studio regions")
    completed_by: int | None = Field(description="the id of the user who made it")
    updated_by: int | None = Field(description="the id of the user who changed it last")
    was_cancelled: bool = Field(description="a skip: the labeler passed on the task")
    ground_truth: bool
    lead_time: float | None = Field(description="seconds spent on it")
    created_at: str | None = Field(description="ISO 8601, UTC")
    updated_at: str | None = Field(description="ISO 8601, UTC")
    draft_created_at: str | None = None
    task: int = Field(description="the task's id: its data row's id")
    data_row_id: int
    project: int = Field(description="the project's id")
    parent_prediction: int | None = None
    parent_annotation: int | None = None
    version: int = Field(description="1 when made; one more on every change")


class AnnotationList(Model):
    items: list[Annotation]


class AnnotationPage(Model):
    items: list[Annotation]
    next_cursor: int | None = Field(description="pass as `after` for the next page; null: last")


class Prediction(Model):
    """A model's prediction for a task, in Label Studio's shape."""

    id: int
    result: list[Region] = Field(description="Label Studio regions (each may hold score)")
    model_version: str
    score: float | None
    created_at: str | None = Field(description="ISO 8601, UTC")
    updated_at: str | None = Field(description="ISO 8601, UTC")
    task: int = Field(description="the task's id: its data row's id")
    data_row_id: int
    project: int


class PredictionList(Model):
    items: list[Prediction]


# --- tasks -----------------------------------------------------------------------------------


class Task(Model):
    """A data row in a project, addressed by the row's id within the project."""

    data_row_id: int
    project_id: int
    status: str = Field(description="unlabeled, labeled or skipped")
    total_annotations: int
    cancelled_annotations: int
    total_predictions: int
    lease_user_id: int | None = Field(
        None, description="who `next-task` gave the task to, while the lease runs; else null"
    )
    lease_until: str | None = Field(None, description="when that lease ends (ISO 8601, UTC)")
    imported_at: str | None = Field(
        None,
        description="when the Label Studio annotations and predictions the row was imported "
        "with were brought in; null: it had none",
    )
    created_at: str | None = Field(description="when the row joined the project")
    updated_at: str | None
    data_row: DataRow = Field(
        description="the data row, as data row answers show it (with `resolved` when asked)"
    )


class TaskPage(Model):
    items: list[Task]
    next_cursor: int | None = Field(description="pass as `after` for the next page; null: last")
