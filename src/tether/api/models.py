"""Request and response bodies of the HTTP API (they shape the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class Dataset(BaseModel):
    id: int
    name: str
    description: str
    created_at: Any
    updated_at: Any
    created_by: int | None = None
    row_count: int | None = None


class DatasetList(BaseModel):
    items: list[Dataset]


class Progress(BaseModel):
    done: int = Field(description="items done (import: input items; delete_dataset: rows)")
    total: int | None = Field(description="items in all, once known")


class Counts(BaseModel):
    """``failed`` for every kind, and the kind's own tallies: import ``created``, ``updated``;
    delete_dataset ``deleted``."""

    model_config = ConfigDict(extra="allow")
    failed: int


class Job(BaseModel):
    """An asynchronous unit of work of some ``kind``: ``import`` (bulk create) or
    ``delete_dataset``."""

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


class JobList(BaseModel):
    items: list[Job]
    next_cursor: str | None = Field(None, description="pass as ``after`` for the next page")


class JobError(BaseModel):
    index: int | None
    item_key: str | None = Field(None, description="what names the item: a row index, a key")
    global_key: str | None
    external_id: str | None
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class JobErrorPage(BaseModel):
    items: list[JobError]
    next_cursor: int | None


class DataRowPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: int | None


class RowCount(BaseModel):
    count: int
    exact: bool


class DataRowPatch(Body):
    row_data: str | dict[str, Any] | None = None
    global_key: str | None = None
    external_id: str | None = None
    media_type: str | None = None
    media_attributes: dict[str, Any] | None = None
    metadata_fields: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None


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


class ItemResults(BaseModel):
    results: list[dict[str, Any]]


class FieldIn(Body):
    name: str
    kind: str = Field(description="string, number, datetime, enum or embedding")
    options: list[str] | None = None
    dimension: int | None = None


class FieldPatch(Body):
    name: str | None = None
    add_options: list[str] | None = None


class MetadataField(BaseModel):
    id: str
    name: str
    kind: str
    reserved: bool
    options: list[dict[str, str]] | None = None
    dimension: int | None = None


class MetadataSchema(BaseModel):
    fields: list[MetadataField]
