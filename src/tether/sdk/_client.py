"""Client, Dataset, Storage and Job: thin objects over the HTTP API. Answers come back as the
API's own response models (``tether.schemas``); each also reads like a dict (``row["id"]``)."""

from __future__ import annotations

import heapq
import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, PrivateAttr

from tether import schemas
from tether.sdk import _uploads
from tether.sdk._bound import _Bound
from tether.sdk._errors import (
    InvalidError,
    JobTimeoutError,
    NotFoundError,
    TetherAPIError,
    raise_for_answer,
)
from tether.sdk._projects import Annotation, Project

DEFAULT_URL = "http://127.0.0.1:8080"
FINISHED = ("completed", "completed_with_errors", "failed", "canceled")
RETRY_STATUSES = (502, 503, 504)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
UPLOAD_CHUNK = 1 << 20
EXPORT_ROWS_HEADER = "X-Tether-Export-Rows"  # how many rows an export holds
M = TypeVar("M", bound=BaseModel)


class MissingAPIKeyError(ValueError):
    """No API key was given and ``TETHER_API_KEY`` is not set."""


class Client:
    """A connection to one tether server, as one API key's user.

    ``url`` and ``api_key`` default to the ``TETHER_URL`` and ``TETHER_API_KEY`` environment
    variables. A request that may safely be sent again — GET, HEAD, PUT, DELETE, or one
    carrying an ``Idempotency-Key`` — is retried ``retries`` times after a lost connection or a
    502/503/504 answer. Every call that creates or changes something sends a new
    ``Idempotency-Key`` and the same one on each retry, so the server acts once and a retry
    gets the first answer. Other requests are retried only when the connection could not
    be opened (nothing was sent). ``transport`` is an httpx transport (e.g.
    ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 0.2,
    ) -> None:
        self.url = (url or os.environ.get("TETHER_URL") or DEFAULT_URL).rstrip("/")
        key = api_key or os.environ.get("TETHER_API_KEY")
        if not key:
            raise MissingAPIKeyError("no API key: pass api_key= or set TETHER_API_KEY")
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=self.url + "/api/v1",
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "tether-sdk"},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body_factory: Callable[[], Any] | None = None,
        *,
        once: bool = False,
        safe: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """One API call. ``once=True`` sends a new ``Idempotency-Key`` (reused on each
        retry); ``safe=True`` marks a POST that only reads. ``body_factory`` makes a fresh
        body for each try."""
        if once:
            kwargs["headers"] = {"Idempotency-Key": uuid.uuid4().hex, **kwargs.get("headers", {})}
        headers = kwargs.get("headers") or {}
        retryable = (
            safe
            or method.upper() in IDEMPOTENT_METHODS
            or any(name.lower() == "idempotency-key" for name in headers)
        )
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            if body_factory is not None:
                kwargs["content"] = body_factory()
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if last:  # the request never left: always safe to try again
                    raise
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                if last or not retryable:
                    raise
            else:
                if last or not retryable or response.status_code not in RETRY_STATUSES:
                    raise_for_answer(response)
                    return response
            time.sleep(min(self.backoff * 2**attempt, 5))
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """One API call's answer, parsed into its response model."""
        return model.model_validate_json(self.request(method, path, **kwargs).content)

    # --- datasets ------------------------------------------------------------------------

    def create_dataset(self, name: str, description: str = "") -> Dataset:
        body = {"name": name, "description": description}
        return Dataset._of(self, self._json("POST", "/datasets", json=body, once=True))

    def get_dataset(self, id_or_name: int | str) -> Dataset:
        """The dataset of this id. A string of digits is an id too; for compatibility another
        string is looked up as a name (``get_dataset_by_name``, which finds any name)."""
        if isinstance(id_or_name, str) and not _is_id(id_or_name):
            return self.get_dataset_by_name(id_or_name)
        return Dataset._of(self, self._json("GET", f"/datasets/{int(id_or_name)}"))

    def get_dataset_by_name(self, name: str) -> Dataset:
        """The dataset of this name, whatever it holds (digits too); ``NotFoundError`` if none."""
        items = self._json("GET", "/datasets", params={"name": name})["items"]
        if not items:
            raise NotFoundError(404, "not_found", f"no dataset named {name!r}")
        return Dataset._of(self, items[0])

    def datasets(self) -> list[Dataset]:
        return [Dataset._of(self, d) for d in self._json("GET", "/datasets")["items"]]

    # --- projects ------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        label_config: str | None = None,
        description: str = "",
        *,
        template: str | None = None,
    ) -> Project:
        """A new labeling project with Label Studio's XML ``label_config``, or one of the
        shipped templates (``label_config_templates()``) by name."""
        body: dict[str, Any] = {"name": name, "description": description}
        if template is not None:
            body["template"] = template
        else:
            body["label_config"] = label_config
        return Project._of(self, self._json("POST", "/projects", json=body, once=True))

    def projects(self) -> list[Project]:
        return [Project._of(self, p) for p in self._json("GET", "/projects")["items"]]

    def get_project(self, id_or_name: int | str) -> Project:
        """The project of this id, or of this name (a string that is not all digits)."""
        return Project._of(self, self._json("GET", f"/projects/{_segment(id_or_name)}"))

    def label_config_templates(self) -> dict[str, str]:
        """The label configs tether ships, by name."""
        items = self._json("GET", "/projects/templates")["items"]
        return {t["name"]: t["label_config"] for t in items}

    def get_annotation(self, annotation_id: int) -> Annotation:
        """An annotation of any project of the organization, by id."""
        return Annotation._of(self, self._json("GET", f"/annotations/{int(annotation_id)}"))

    # --- files ---------------------------------------------------------------------------

    def upload_file(
        self,
        path: str | os.PathLike[str],
        storage: int | None = None,
        key: str | None = None,
        overwrite: bool = False,
    ) -> str:
        """Put a local file into storage the organization owns and return its URI (what a
        row's ``row_data`` takes): into source storage ``storage`` (under its prefix), or,
        with none, the folder tether keeps for the organization's uploads (under
        ``files/``). ``key`` names it there (default: the file's name). A file already
        stored under the key (same size and, where cheap, the same hash) is not sent again;
        another one there raises ``ConflictError`` unless ``overwrite``. Larger than the
        server's limit (``TETHER_MAX_ASSET_BYTES``): ``TooLargeError``."""
        file = Path(path)
        dest = _uploads.destination(self, None, storage)
        name = _uploads.safe_name(key if key is not None else file.name)
        return _uploads.upload(self, dest, _uploads.LocalFile(file, name), overwrite).uri

    # --- data rows -----------------------------------------------------------------------

    def get_data_row(self, data_row_id: int, resolve: bool = False) -> schemas.DataRow:
        """One row; ``resolve=True`` adds ``row.resolved``: its URIs as URLs a browser can
        load (``resolved.row_data``, ``resolved.attachments``, ``resolved.unresolved``,
        ``resolved.expires_at``)."""
        params = {"resolve": "true"} if resolve else None
        return self._model(schemas.DataRow, "GET", f"/data-rows/{int(data_row_id)}", params=params)

    def get_data_row_ids_for_global_keys(self, global_keys: list[str]) -> list[schemas.KeyLookup]:
        """``[{"global_key", "data_row_id"}]`` in the order given; id None when not found."""
        out: list[schemas.KeyLookup] = []
        for start in range(0, len(global_keys), 10_000):
            out += self._model(
                schemas.KeyLookups,
                "POST",
                "/data-rows/lookup",
                json={"global_keys": global_keys[start : start + 10_000]},
                safe=True,
            ).results
        return out

    def data_rows(
        self, page_size: int = 1000, resolve: bool = False, **filters: Any
    ) -> Iterator[schemas.DataRow]:
        """Every row matching the filters, fetched a page at a time; ``resolve=True`` adds
        ``row.resolved`` to each (see ``get_data_row``).

        Filters: ``dataset_id``, ``media_type``, ``external_id``, ``global_key``,
        ``global_key_prefix``, ``created_after``, ``created_before``, ``tag_contains`` and
        ``metadata={"split": "valid", "score": {"gte": 0.5}}`` (or a list of the API's
        ``"FIELD:OP:VALUE"`` strings).
        """
        params = _filter_params(filters)
        params["limit"] = page_size
        if resolve:
            params["resolve"] = "true"
        after = None
        while True:
            if after is not None:
                params["after"] = after
            page = self._model(schemas.DataRowPage, "GET", "/data-rows", params=params)
            yield from page.items
            after = page.next_cursor
            if after is None:
                return

    def update_data_row(self, data_row_id: int, **changes: Any) -> schemas.DataRow:
        return self._model(
            schemas.DataRow,
            "PATCH",
            f"/data-rows/{int(data_row_id)}",
            json=changes,
            once=True,
        )

    def delete_data_row(self, data_row_id: int) -> None:
        self.request("DELETE", f"/data-rows/{int(data_row_id)}", once=True)

    def delete_data_rows(
        self, ids: list[int] | None = None, global_keys: list[str] | None = None
    ) -> list[schemas.DeleteResult]:
        """One result per item, ids first: ``{index, id, global_key, ok, code, message}``."""
        return self._model(
            schemas.DeleteResults,
            "POST",
            "/data-rows/delete",
            json={"ids": ids or [], "global_keys": global_keys or []},
            once=True,
        ).results

    def assign_global_keys(self, assignments: list[dict[str, Any]]) -> list[schemas.AssignResult]:
        """``[{"data_row_id": 1, "global_key": "a"}]`` → one result per pair (a key another
        row holds: ``ok`` false, ``code`` ``global_key_exists``)."""
        return self._model(
            schemas.AssignResults,
            "POST",
            "/data-rows/global-keys",
            json={"assignments": assignments},
            once=True,
        ).results

    def clear_global_keys(self, global_keys: list[str]) -> list[schemas.ClearResult]:
        return self._model(
            schemas.ClearResults,
            "POST",
            "/data-rows/global-keys/clear",
            json={"global_keys": global_keys},
            once=True,
        ).results

    # --- metadata schema -----------------------------------------------------------------

    def metadata_schema(self) -> list[schemas.MetadataField]:
        return self._model(schemas.MetadataSchema, "GET", "/metadata-schema").fields

    def create_metadata_field(
        self, name: str, kind: str, options: list[str] | None = None, dimension: int | None = None
    ) -> schemas.MetadataField:
        body = {"name": name, "kind": kind, "options": options, "dimension": dimension}
        return self._model(schemas.MetadataField, "POST", "/metadata-schema", json=body, once=True)

    def update_metadata_field(
        self, field: str, name: str | None = None, add_options: list[str] | None = None
    ) -> schemas.MetadataField:
        body = {"name": name, "add_options": add_options}
        return self._model(
            schemas.MetadataField,
            "PATCH",
            f"/metadata-schema/{_segment(field)}",
            json=body,
            once=True,
        )

    def delete_metadata_field(self, field: str) -> None:
        self.request("DELETE", f"/metadata-schema/{_segment(field)}", once=True)

    # --- storage syncs -------------------------------------------------------------------

    def sync_storage(self, storage_id: int) -> Job:
        """Start a sync of a source storage into its dataset; returns its job at once (the
        storage's queued or running sync, if it has one: a storage syncs once at a time).
        ``job.wait_till_done()`` follows it; its ``counts`` hold ``listed``, ``created``,
        ``updated``, ``unchanged``, ``missing``, ``removed`` and ``failed``.

        On a target storage it starts an export of the project's annotations (kind
        ``export``; the queued one if there is one): ``counts`` hold ``written``,
        ``unchanged``, ``deleted`` and ``failed``."""
        path = f"/storages/{_segment(storage_id)}/sync"
        return Job._of(self, self._json("POST", path, once=True))

    # --- organization and storages ------------------------------------------------------

    def organization(self) -> schemas.Organization:
        """The caller's organization, with the ``external_id`` IAM-role trust policies name."""
        return self._model(schemas.Organization, "GET", "/organization")

    def storages(
        self, dataset: Dataset | int | None = None, project: Project | int | None = None
    ) -> list[Storage]:
        """The organization's storages (of one dataset, or one project's targets, when
        given)."""
        params: dict[str, int] = {}
        if dataset is not None:
            params["dataset_id"] = _dataset_id(dataset)
        if project is not None:
            params["project_id"] = project if isinstance(project, int) else int(project.id)
        items = self._json("GET", "/storages", params=params)["items"]
        return [Storage._of(self, item) for item in items]

    def get_storage(self, storage_id: int) -> Storage:
        return Storage._of(self, self._json("GET", f"/storages/{int(storage_id)}"))

    # --- jobs ----------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        return Job._of(self, self._json("GET", f"/jobs/{_segment(job_id)}"))

    def jobs(self, limit: int = 50) -> list[Job]:
        """The newest jobs first, at most ``limit`` (see ``iter_jobs`` for more)."""
        return list(itertools.islice(self.iter_jobs(page_size=min(limit, 500)), limit))

    def iter_jobs(self, page_size: int = 100) -> Iterator[Job]:
        """Every job, newest first, a page at a time (following ``next_cursor`` when the
        server gives one)."""
        params: dict[str, Any] = {"limit": page_size}
        while True:
            page = self._json("GET", "/jobs", params=params)
            for item in page["items"]:
                yield Job._of(self, item)
            after = page.get("next_cursor")
            if after is None or not page["items"]:
                return
            params["after"] = after


class Dataset(schemas.Dataset, _Bound):
    """A dataset: its fields (``id``, ``name``, ...) and what can be done with it."""

    def __repr__(self) -> str:
        return f"<Dataset {self.id} {self.name!r}>"

    def create_data_rows(
        self,
        rows_or_path: Iterable[dict[str, Any] | str | os.PathLike[str]] | str | Path,
        upsert: bool = False,
        format: str | None = None,
        media_type: str | None = None,
        on_upload: Callable[[int], None] | None = None,
        storage: int | None = None,
    ) -> Job:
        """Start a bulk import of rows (dicts, streamed as NDJSON) or of a file (any format
        the server reads: JSON, NDJSON, CSV, TSV, TXT). Returns its job at once.
        ``on_upload(n)`` is told of every ``n`` bytes sent.

        Local files: a list whose items are paths (a ``Path``, or a ``str`` that names an
        existing file or is an absolute path; other strings stay URIs or inline text as
        before, and dicts may sit beside them, a dict's ``row_data`` may be a ``Path``)
        uploads each file into
        storage the organization owns -- source storage ``storage``, else the dataset's
        one source storage, else tether's own folder for uploads -- and makes its row
        (``row_data`` and ``global_key`` the object's URI, ``external_id`` the path as
        given, ``media_type`` from the extension). A file that cannot be uploaded (too
        large, unreadable, gone) is a per-item error of the job (``job.upload_errors``,
        also in ``job.errors``), not a failed batch. One ``str`` or ``Path`` (not in a list)
        is still a manifest file to import."""
        if not isinstance(rows_or_path, str | Path) and _holds_files(rows_or_path):
            return self._create_from_files(
                list(rows_or_path), upsert, media_type, on_upload, storage
            )
        params: dict[str, Any] = {"upsert": upsert}
        if format:
            params["format"] = format
        if media_type:
            params["media_type"] = media_type
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        if isinstance(rows_or_path, str | Path):
            path = Path(rows_or_path)
            if not path.is_file():
                raise FileNotFoundError(f"no file {path}")
            params["filename"] = path.name
            factory: Callable[[], Any] = lambda: _file_chunks(path, on_upload)  # noqa: E731
        else:
            factory = _NdjsonBody(rows_or_path)  # type: ignore[arg-type]
            headers["Content-Type"] = "application/x-ndjson"
        try:
            response = self.client.request(
                "POST",
                f"/datasets/{self.id}/data-rows",
                body_factory=factory,
                params=params,
                headers=headers,
            )
        except InvalidError:
            if isinstance(factory, _NdjsonBody) and factory.resent_empty:
                raise TetherAPIError(
                    0,
                    "not_retryable",
                    "the upload failed before the server made a job, and its rows came from "
                    "a one-shot iterator; pass a list or a file to retry",
                ) from None
            raise
        return Job._of(self.client, response.json())

    def add_source_storage(self, type: str, **config: Any) -> Storage:
        """Connect a bucket, container, folder or Redis db to this dataset (admins):
        ``type`` is s3, gcs, azure_blob, redis or local; ``config`` its fields and options
        (``bucket=``, ``prefix=``, ``access_key_id=``, ..., ``regex_filter=``,
        ``recursive=``, ...). The server checks it first: ``InvalidError`` naming what to
        fix when it cannot list or read it; warnings are in ``storage.check``."""
        body = {**config, "type": type, "dataset_id": self.id}
        answer = self.client._json("POST", "/storages", json=body, once=True)
        return Storage._of(self.client, answer)

    def _create_from_files(
        self,
        items: list[Any],
        upsert: bool,
        media_type: str | None,
        on_upload: Callable[[int], None] | None,
        storage: int | None,
    ) -> Job:
        dest = _uploads.destination(self.client, self.id, storage)
        rows: list[dict[str, Any]] = []
        sources: list[int] = []  # the item index of each row sent
        failed: list[schemas.JobError] = []
        keys: set[str] = set()
        for index, item in enumerate(items):
            try:
                row = self._row_of(item, dest, keys, on_upload)
            except (OSError, ValueError, TetherAPIError) as exc:
                code, message = _uploads.describe(exc)
                failed.append(_uploads.error_item(index, code, message, item_key=_label(item)))
                continue
            rows.append(row)
            sources.append(index)
        if not rows:
            raise TetherAPIError(
                0,
                "nothing_uploaded",
                f"none of the {len(items)} items could be uploaded; the first error: "
                + (failed[0].message if failed else "no items"),
                [f.model_dump() for f in failed],
            )
        job = self.create_data_rows(rows, upsert=upsert, media_type=media_type)
        job._attach_uploads(failed, sources)
        return job

    def _row_of(
        self,
        item: Any,
        dest: schemas.UploadDestination,
        keys: set[str],
        on_upload: Callable[[int], None] | None,
    ) -> dict[str, Any]:
        """The row of one item, its file (if any) uploaded first."""
        if isinstance(item, dict):
            if not isinstance(item.get("row_data"), os.PathLike):
                return item
            path = Path(item["row_data"])
        else:
            found = _local_file(item)
            if found is None:
                if isinstance(item, str):
                    return item  # type: ignore[return-value]  # a URI or inline text, as before
                raise ValueError(f"an item is a dict or a file path, not {type(item).__name__}")
            path = found
        name = _uploads.safe_name(path.name)
        if name in keys:
            raise ValueError(
                f"another file of this call is named {name!r} too (one key each); upload "
                "them in calls of their own, or with `tether upload FOLDER`"
            )
        keys.add(name)
        stored = _uploads.upload(
            self.client, dest, _uploads.LocalFile(path, name), on_bytes=on_upload
        )
        done = _uploads.FileUpload(0, path, name, stored.key, stored.uri, stored.size)
        row = done.row(str(item if not isinstance(item, dict) else path))
        if isinstance(item, dict):
            row = {**row, **{k: v for k, v in item.items() if k != "row_data"}}
            row["row_data"] = stored.uri
        return row

    def upload_files(
        self,
        files: Iterable[str | os.PathLike[str] | tuple[str | os.PathLike[str], str]],
        storage: int | None = None,
        overwrite: bool = False,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Iterator[_uploads.FileUpload]:
        """Upload local files for this dataset, without making rows (``create_data_rows``
        does both): each a path, or a ``(path, name)`` pair whose name (a relative path such
        as ``sub/a.jpg``) is its key under the destination's prefix (default: its file
        name). Into source storage ``storage``, else the dataset's one source storage, else
        tether's own folder for uploads (``<dataset id>/...``). Yields one ``FileUpload``
        per file, in order; a file that fails is one (``ok`` false), not an exception. A
        file already stored under its key (same size, and the same hash where cheap) is not
        sent again (``created`` false): a re-run skips what is there."""
        dest = _uploads.destination(self.client, self.id, storage)
        for index, given in enumerate(files):
            path, name = given if isinstance(given, tuple) else (given, None)
            path = Path(path)
            try:
                name = _uploads.safe_name(name if name is not None else path.name)
                file = _uploads.LocalFile(path, name)
                stored = _uploads.upload(self.client, dest, file, overwrite, on_bytes)
            except (OSError, ValueError, TetherAPIError) as exc:
                code, message = _uploads.describe(exc)
                yield _uploads.FileUpload(index, path, str(name), code=code, message=message)
                continue
            yield _uploads.FileUpload(
                index, path, name, stored.key, stored.uri, stored.size, stored.created
            )

    def data_rows(
        self, page_size: int = 1000, resolve: bool = False, **filters: Any
    ) -> Iterator[schemas.DataRow]:
        """The dataset's rows; ``resolve=True`` adds ``row.resolved`` (``Client.data_rows``)."""
        return self.client.data_rows(
            page_size=page_size, resolve=resolve, dataset_id=self.id, **filters
        )

    def export(self) -> Iterator[dict[str, Any]]:
        """Every row, every field, streamed as plain dicts (what ``create_data_rows`` takes
        back, and what ``orjson.dumps`` writes as is).

        The export is one snapshot of the dataset. A stream that breaks off raises
        ``httpx.RemoteProtocolError`` (or another ``httpx.TransportError``); a stream with
        fewer rows than the server announced (``X-Tether-Export-Rows``), or an error the server
        reports in the stream (a line ``{"error": {...}}``), raises ``TetherAPIError`` with
        code ``export_incomplete``: what came before it is not the whole dataset."""
        with self.client._http.stream("GET", f"/datasets/{self.id}/export") as response:
            if not response.is_success:
                response.read()
                raise_for_answer(response)
            announced = response.headers.get(EXPORT_ROWS_HEADER)
            seen = 0
            for line in response.iter_lines():
                if not line:
                    continue
                item = orjson.loads(line)
                if isinstance(item, dict) and set(item) == {"error"}:
                    raise _stream_error(item["error"])
                seen += 1
                yield item
            if announced is not None and announced.isdigit() and int(announced) != seen:
                raise TetherAPIError(
                    0,
                    "export_incomplete",
                    f"the export ended after {seen} of the {announced} rows it announced",
                )

    def count_rows(self) -> int:
        """How many data rows the dataset holds now."""
        path = f"/datasets/{self.id}"
        return int(self.client._json("GET", path, params={"with_count": True})["row_count"])

    def update(self, name: str | None = None, description: str | None = None) -> Dataset:
        body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        self._replace(self.client._json("PATCH", f"/datasets/{self.id}", json=body, once=True))
        return self

    def probe(self, force: bool = False) -> Job:
        """Start filling in the media attributes of the dataset's image, video, audio and
        PDF rows (width, height, mimeType, duration, frameRate, pageCount, size: read from
        each asset's headers through its storage). Returns the job at once;
        ``job.wait_till_done()`` follows it. Its ``counts`` hold ``probed``, ``unchanged``,
        ``skipped`` and ``failed`` (an asset that cannot be read: see ``job.errors``).
        ``force``: probe every row again, not only the rows that lack attributes."""
        params = {"force": "true"} if force else {}
        path = f"/datasets/{self.id}/probe"
        return Job._of(self.client, self.client._json("POST", path, params=params, once=True))

    def delete(self, wait: bool = True, timeout: float | None = None) -> int:
        """Delete the dataset and its rows; returns how many rows go. The dataset is gone at
        once; its rows go in a job, which this waits for unless ``wait=False`` (until it ends,
        the rows' global keys stay taken)."""
        answer = self.client._json("DELETE", f"/datasets/{self.id}", once=True)
        if wait and "id" in answer:
            Job._of(self.client, answer).wait_till_done(timeout=timeout, poll=0.2)
        return int(answer["deleted_rows"])


class Storage(schemas.Storage, _Bound):
    """A storage connection: its fields (``type``, ``config``, ``secret_fields_set``, the
    options) and what can be done with it. Secrets are write-only: they are never read
    back."""

    def __repr__(self) -> str:
        return f"<Storage {self.id} {self.type} {self.title!r}>"

    def refresh(self) -> Storage:
        self._replace(self.client._json("GET", f"/storages/{self.id}"))
        return self

    def update(self, **changes: Any) -> Storage:
        """Change config fields or options (admins). Secret fields given replace the stored
        ones; given as None they are removed. A change of connection fields is checked
        first: ``InvalidError`` (nothing saved) when the check finds an error."""
        self._replace(self.client._json("PATCH", f"/storages/{self.id}", json=changes, once=True))
        return self

    def delete(self) -> None:
        """Delete the storage (admins); its data rows stay."""
        self.client.request("DELETE", f"/storages/{self.id}", once=True)

    def validate(self) -> schemas.StorageCheck:  # type: ignore[override]
        """Check the connection now: ``ok``, ``errors`` (what to fix), ``warnings``."""
        path = f"/storages/{self.id}/validate"
        return self.client._model(schemas.StorageCheck, "POST", path, safe=True)

    def sync(self, **kw: Any) -> Job:
        """Start a sync of this storage (see ``Client.sync_storage``)."""
        return self.client.sync_storage(self.id, **kw)


class Job(schemas.Job, _Bound):
    """A job: its fields (``status``, ``counts``, ``progress``, ...) and waiting for it.

    The job of ``create_data_rows`` with local files also holds the files that could not
    be uploaded (``upload_errors``): they are per-item errors of the job as the caller sees
    it -- in ``errors`` (with their index in the list given; the server's errors are
    renumbered to it too), in ``counts.failed``, and a finished job with any is
    ``completed_with_errors``."""

    _upload_errors: list[schemas.JobError] = PrivateAttr(default_factory=list)
    _sources: list[int] | None = PrivateAttr(None)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.status} {self.counts}>"

    @property
    def upload_errors(self) -> list[schemas.JobError]:
        """The files of ``create_data_rows`` that could not be uploaded (none otherwise)."""
        return list(self._upload_errors)

    def _attach_uploads(self, failed: list[schemas.JobError], sources: list[int]) -> None:
        self._upload_errors = failed
        self._sources = sources
        self._count_uploads()

    def _count_uploads(self) -> None:
        if not self._upload_errors:
            return
        self.counts.failed += len(self._upload_errors)
        if self.status == "completed":
            self.status = "completed_with_errors"

    def _replace(self, data: dict[str, Any]) -> None:
        super()._replace(data)
        self._count_uploads()

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    def refresh(self) -> Job:
        self._replace(self.client._json("GET", f"/jobs/{self.id}"))
        return self

    def wait_till_done(
        self,
        timeout: float | None = None,
        poll: float = 0.5,
        on_progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll until the job finishes; ``JobTimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            if on_progress:
                on_progress(self)
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeoutError(f"job {self.id} still {self.status} after {timeout}s")
            pause = poll if deadline is None else min(poll, max(deadline - time.monotonic(), 0))
            time.sleep(pause)
            self.refresh()
        if on_progress:
            on_progress(self)
        return self

    @property
    def errors(self) -> list[schemas.JobError]:
        """All per-item errors: ``{index, global_key, external_id, code, message}``."""
        return list(self.iter_errors())

    def iter_errors(self) -> Iterator[schemas.JobError]:
        """The job's errors in item order (with ``upload_errors`` among them)."""
        if not self._upload_errors and self._sources is None:
            yield from self._server_errors()
            return
        sources = self._sources or []
        renumbered = (_renumber(e, sources) for e in self._server_errors())
        yield from heapq.merge(
            self._upload_errors, renumbered, key=lambda e: -1 if e.index is None else e.index
        )

    def _server_errors(self) -> Iterator[schemas.JobError]:
        after = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if after is not None:
                params["after"] = after
            path = f"/jobs/{self.id}/errors"
            page = self.client._model(schemas.JobErrorPage, "GET", path, params=params)
            yield from page.items
            after = page.next_cursor
            if after is None:
                return

    def cancel(self) -> Job:
        self._replace(self.client._json("POST", f"/jobs/{self.id}/cancel"))
        return self


def _holds_files(rows: Iterable[Any]) -> bool:
    """Whether a list (or tuple) of items names local files to upload."""
    if not isinstance(rows, list | tuple):
        return False
    return any(
        _local_file(item) is not None
        or (isinstance(item, dict) and isinstance(item.get("row_data"), os.PathLike))
        for item in rows
    )


# URIs that look like absolute paths but name objects in storages (Label Studio's forms).
_STORED_PATHS = ("/data/local-files/", "/data/upload/")


def _local_file(item: Any) -> Path | None:
    """The local file an item names: a ``Path`` always; a ``str`` when it is an existing
    file, or an absolute (or ``~``) path -- not a URI, not inline text, not a Label Studio
    ``/data/...`` URI -- so a missing file is an error, never a row of its path."""
    if isinstance(item, os.PathLike):
        return Path(item)
    if not isinstance(item, str) or not item or "\n" in item or len(item) > 4096:
        return None
    path = Path(item).expanduser()
    if item.startswith(("/", "~")) and not item.startswith(_STORED_PATHS):
        return path
    return path if path.is_file() else None


def _label(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("row_data"))
    return str(item)


def _renumber(error: schemas.JobError, sources: list[int]) -> schemas.JobError:
    """A server error of the rows sent, with the index of the item it came from."""
    if error.index is None or not 0 <= error.index < len(sources):
        return error
    return error.model_copy(update={"index": sources[error.index]})


def _stream_error(error: Any) -> TetherAPIError:
    if not isinstance(error, dict):
        return TetherAPIError(0, "stream_error", str(error))
    code = str(error.get("code") or "stream_error")
    message = str(error.get("message") or "the export stopped before its end")
    return TetherAPIError(0, code, message, error.get("details"))


def _dataset_id(dataset: Dataset | int) -> int:
    return dataset.id if isinstance(dataset, Dataset) else int(dataset)


def _is_id(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _segment(value: int | str) -> str:
    return quote(str(value), safe="")


def _file_chunks(path: Path, on_upload: Callable[[int], None] | None) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            if on_upload:
                on_upload(len(chunk))
            yield chunk


class _NdjsonBody:
    """Rows as NDJSON chunks, made afresh for each try. A list is sent again on a retry; a
    one-shot iterator cannot be, so a retry sends an empty body with the same idempotency key:
    the server answers with the job the first try made, or refuses the empty upload."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self.rows = rows
        self.one_shot = iter(rows) is rows
        self.used = False
        self.resent_empty = False

    def __call__(self) -> Iterator[bytes]:
        if self.used and self.one_shot:
            self.resent_empty = True
            return iter(())
        self.used = True
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        dumps = orjson.dumps
        buffer: list[bytes] = []
        size = 0
        for row in self.rows:
            line = dumps(row, option=orjson.OPT_APPEND_NEWLINE)
            buffer.append(line)
            size += len(line)
            if size >= UPLOAD_CHUNK:
                yield b"".join(buffer)
                buffer, size = [], 0
        if buffer:
            yield b"".join(buffer)


def _filter_params(filters: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    specs: list[str] = []
    for key, value in filters.items():
        if value is None:
            continue
        if key == "metadata" and not isinstance(value, dict):
            specs += [str(spec) for spec in value]  # "FIELD:OP:VALUE" as the API takes them
        elif key == "metadata":
            for name, cond in value.items():
                ops = cond if isinstance(cond, dict) else {"eq": cond}
                specs += [f"{name}:{op}:{_text(v)}" for op, v in ops.items()]
        else:
            params[key] = _text(value)
    if specs:
        params["metadata"] = specs
    return params


def _text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
