"""Project, Annotation and Prediction: labeling projects of the SDK, over ``/projects``,
``/annotations`` and ``/predictions``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from tether import schemas
from tether.sdk import _export
from tether.sdk._bound import _Bound
from tether.sdk._errors import NotFoundError

if TYPE_CHECKING:
    from tether.sdk._client import Dataset, Job, Storage


class Project(schemas.Project, _Bound):
    """A labeling project: its fields (``name``, ``label_config``, ``task_counts``, ...) and
    what can be done with it."""

    def __repr__(self) -> str:
        return f"<Project {self.id} {self.name!r}>"

    @property
    def _path(self) -> str:
        return f"/projects/{self.id}"

    def refresh(self) -> Project:
        self._replace(self.client._json("GET", self._path))
        return self

    def update(
        self,
        name: str | None = None,
        description: str | None = None,
        label_config: str | None = None,
    ) -> Project:
        """Change the name, description or label config (checked: ``InvalidError`` naming
        the line; ``ConflictError`` when stored annotations would no longer fit it)."""
        given = {"name": name, "description": description, "label_config": label_config}
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        self._replace(self.client._json("PATCH", self._path, json=changes, once=True))
        return self

    def delete(self) -> None:
        """Delete the project with its tasks, annotations, predictions and target storages
        (admins). The data rows stay."""
        self.client.request("DELETE", self._path, once=True)

    # --- annotations ---------------------------------------------------------------------

    def create_annotation(
        self,
        data_row_id: int,
        result: list[dict[str, Any]],
        lead_time: float | None = None,
        was_cancelled: bool = False,
        ground_truth: bool = False,
        parent_prediction: int | None = None,
    ) -> Annotation:
        """A new annotation of the task (the data row ``data_row_id``) by the caller:
        ``result`` is Label Studio's list of regions, each fitting the label config
        (``InvalidError`` with code ``region_mismatch`` naming the region otherwise). A skip
        is ``was_cancelled=True`` with ``result=[]``. ``parent_prediction``: the id of the
        task's prediction it started from."""
        body = {
            "result": result,
            "lead_time": lead_time,
            "was_cancelled": was_cancelled,
            "ground_truth": ground_truth,
            "parent_prediction": parent_prediction,
        }
        path = f"{self._path}/tasks/{int(data_row_id)}/annotations"
        return Annotation._of(self.client, self.client._json("POST", path, json=body, once=True))

    def annotations(
        self,
        data_row_id: int | None = None,
        completed_by: int | None = None,
        was_cancelled: bool | None = None,
        ground_truth: bool | None = None,
        updated_after: datetime | str | None = None,
        page_size: int = 100,
    ) -> Iterator[Annotation]:
        """The project's annotations in id order (fetched a page at a time), filtered by
        task, by user, by skip or ground-truth flag, or changed after a time."""
        filters = {
            "data_row_id": data_row_id,
            "completed_by": completed_by,
            "was_cancelled": was_cancelled,
            "ground_truth": ground_truth,
            "updated_after": updated_after,
        }
        params: dict[str, Any] = {"limit": page_size}
        for key, value in filters.items():
            if isinstance(value, bool):
                params[key] = "true" if value else "false"
            elif isinstance(value, datetime):
                params[key] = value.isoformat()
            elif value is not None:
                params[key] = str(value)
        while True:
            page = self.client._json("GET", f"{self._path}/annotations", params=params)
            for item in page["items"]:
                yield Annotation._of(self.client, item)
            if page["next_cursor"] is None:
                return
            params["after"] = page["next_cursor"]

    # --- predictions ---------------------------------------------------------------------

    def upload_predictions(
        self,
        items_or_path: Iterable[dict[str, Any]] | str | os.PathLike[str],
        format: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        on_upload: Callable[[int], None] | None = None,
    ) -> Job:
        """Import predictions: dicts (sent as NDJSON) or a file (a JSON array or NDJSON).
        Items: ``{"data_row_id" or "global_key", "result", "model_version", "score"}``, Label
        Studio's predictions (``task``) or its tasks with ``predictions``. Runs as a job
        (kind ``predictions``; counts ``created``, ``failed``), waited for unless
        ``wait=False``; items that cannot be taken are ``job.errors`` (index, reason)."""
        from tether.sdk import _client

        params: dict[str, Any] = {}
        if format:
            params["format"] = format
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        factory: Callable[[], Any]
        if isinstance(items_or_path, str | os.PathLike):
            path = Path(items_or_path)
            if not path.is_file():
                raise FileNotFoundError(f"no file {path}")
            params["filename"] = path.name
            factory = lambda: _client._file_chunks(path, on_upload)  # noqa: E731
        else:
            factory = _client._NdjsonBody(list(items_or_path))
            headers["Content-Type"] = "application/x-ndjson"
        response = self.client.request(
            "POST",
            f"{self._path}/predictions",
            body_factory=factory,
            params=params,
            headers=headers,
        )
        job = _client.Job._of(self.client, response.json())
        return job.wait_till_done(timeout=timeout, poll=0.2) if wait else job

    def predictions(self, data_row_id: int) -> list[Prediction]:
        """The task's predictions, oldest first."""
        path = f"{self._path}/tasks/{int(data_row_id)}/predictions"
        return [Prediction._of(self.client, p) for p in self.client._json("GET", path)["items"]]

    # --- export --------------------------------------------------------------------------

    @overload
    def export(
        self,
        format: Literal["json", "ndjson"] = "json",
        path: None = None,
        *,
        status: Iterable[str] | None = None,
        on_progress: _export.Progress | None = None,
    ) -> Iterator[dict[str, Any]]: ...

    @overload
    def export(
        self,
        format: str,
        path: str | os.PathLike[str] | IO[bytes],
        *,
        status: Iterable[str] | None = None,
        on_progress: _export.Progress | None = None,
    ) -> int: ...

    def export(
        self,
        format: str = "json",
        path: str | os.PathLike[str] | IO[bytes] | None = None,
        *,
        status: Iterable[str] | None = None,
        on_progress: _export.Progress | None = None,
    ) -> Iterator[dict[str, Any]] | int:
        """The project's tasks with their annotations and predictions, in Label Studio's
        JSON export shape, in data row id order (one snapshot of the project).

        Without ``path`` (``format`` json or ndjson): an iterator of task dicts, streamed
        (memory stays flat at any size). With ``path`` (a file name, or an open binary file):
        the server's answer written as it comes (json, ndjson; or ``coco``: the COCO JSON,
        ``yolo`` and ``voc``: a zip, made by Label Studio's converter on the server), and
        the number of tasks returned; a file name is written only when the export is
        complete. ``status``: only tasks of these statuses (``unlabeled``, ``labeled``,
        ``skipped``; COCO, YOLO and VOC hold labeled tasks unless told). ``on_progress(done,
        total)`` counts tasks. An export that ends short raises ``TetherAPIError`` (code
        ``export_incomplete``) or an ``httpx.TransportError``."""
        if format not in _export.STREAMED + _export.CONVERTED:
            choices = ", ".join(_export.STREAMED + _export.CONVERTED)
            raise ValueError(f"format is one of {choices}; got {format!r}")
        params: dict[str, Any] = {"format": format}
        if status is not None:
            params["status"] = [status] if isinstance(status, str) else list(status)
        path_ = f"{self._path}/export"
        if path is not None:
            return _export.write(self.client._http, path_, params, path, on_progress)
        if format not in _export.STREAMED:
            raise ValueError(f"a {format} export is a file: give path=")
        return _export.tasks(self.client._http, path_, params)

    # --- tasks -------------------------------------------------------------------------

    def add_data_rows(
        self,
        dataset: Dataset | int | str | None = None,
        metadata: dict[str, Any] | Sequence[str] | None = None,
        media_type: str | None = None,
        data_row_ids: Sequence[int] | None = None,
        global_keys: Sequence[str] | None = None,
        *,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Add data rows to the project as tasks: the rows of ``dataset`` (an id, a name or a
        ``Dataset``) matching ``metadata`` (``{"split": "train"}``, ``{"score": {"gte":
        0.5}}`` or the API's ``"FIELD:OP:VALUE"`` strings) and ``media_type``, and/or the
        rows named by ``data_row_ids`` or ``global_keys`` (which must match the filters
        too). Runs as an ``add_tasks`` job, which this waits for unless ``wait=False``; its
        ``counts`` hold ``added``, ``existing``, ``imported_annotations``,
        ``imported_predictions`` and ``failed`` (rows that could not join: ``job.errors``).
        """
        from tether.sdk._client import Dataset, Job, _filter_params

        body: dict[str, Any] = {}
        if dataset is not None:
            body["dataset"] = dataset.id if isinstance(dataset, Dataset) else dataset
        if metadata is not None:
            body["metadata"] = _filter_params({"metadata": metadata}).get("metadata", [])
        if media_type is not None:
            body["media_type"] = media_type
        if data_row_ids is not None:
            body["data_row_ids"] = [int(i) for i in data_row_ids]
        if global_keys is not None:
            body["global_keys"] = list(global_keys)
        job = Job._of(
            self.client, self.client._json("POST", f"{self._path}/tasks", json=body, once=True)
        )
        return job.wait_till_done(timeout=timeout, poll=0.2) if wait else job

    def tasks(
        self,
        page_size: int = 1000,
        resolve: bool = False,
        status: str | None = None,
        data_row_ids: Sequence[int] | None = None,
        **filters: Any,
    ) -> Iterator[schemas.Task]:
        """The project's tasks in data row id order, fetched a page at a time: ``status``
        (unlabeled, labeled, skipped), ``data_row_ids``, and the data row filters of
        ``Client.data_rows`` (``dataset_id``, ``media_type``, ``metadata``, ``global_key``,
        ...). ``resolve=True`` adds ``task.data_row.resolved``."""
        from tether.sdk._client import _filter_params

        params = _filter_params(filters)
        params["limit"] = page_size
        if status is not None:
            params["status"] = status
        if data_row_ids is not None:
            params["data_row_id"] = [int(i) for i in data_row_ids]
        if resolve:
            params["resolve"] = "true"
        after = None
        while True:
            if after is not None:
                params["after"] = after
            page = self.client._model(schemas.TaskPage, "GET", f"{self._path}/tasks", params=params)
            yield from page.items
            after = page.next_cursor
            if after is None:
                return

    def get_task(self, data_row_id: int, resolve: bool = False) -> schemas.Task:
        """The task of this data row (``NotFoundError`` when the row is no task here)."""
        params = {"resolve": "true"} if resolve else None
        path = f"{self._path}/tasks/{int(data_row_id)}"
        return self.client._model(schemas.Task, "GET", path, params=params)

    def next_task(self, resolve: bool = False) -> schemas.Task | None:
        """The caller's next task to label, leased to them (``lease_user_id``,
        ``lease_until``): the one they hold, else the first unlabeled task nobody else
        holds. None when no task is left."""
        params = {"resolve": "true"} if resolve else None
        try:
            return self.client._model(schemas.Task, "GET", f"{self._path}/next-task", params=params)
        except NotFoundError as exc:
            if exc.code == "no_task":
                return None
            raise

    # --- target storages ----------------------------------------------------------------

    def add_target_storage(self, type: str, **config: Any) -> Storage:
        """Connect a bucket, container, folder or Redis db that this project's annotations
        are exported to (admins): ``type`` is s3, gcs, azure_blob, redis or local;
        ``config`` its fields (``bucket=``, ``prefix=``, ``access_key_id=``, ...) and the
        options ``title``, ``can_delete_objects`` (False) and ``auto_export`` (True). The
        server checks it first (writes and deletes a probe object): ``InvalidError`` naming
        what to fix. ``storage.sync()`` exports now."""
        from tether.sdk._client import Storage

        body = {**config, "type": type, "project_id": self.id}
        answer = self.client._json("POST", "/storages", json=body, once=True)
        return Storage._of(self.client, answer)

    def storages(self) -> list[Storage]:
        """The project's target storages."""
        return self.client.storages(project=self)


class Annotation(schemas.Annotation, _Bound):
    """An annotation: its fields (``result``, ``version``, ``completed_by``, ...) and
    changing or deleting it."""

    def __repr__(self) -> str:
        return f"<Annotation {self.id} task {self.data_row_id} v{self.version}>"

    @property
    def _path(self) -> str:
        return f"/annotations/{self.id}"

    def refresh(self) -> Annotation:
        self._replace(self.client._json("GET", self._path))
        return self

    def update(
        self,
        result: list[dict[str, Any]] | None = None,
        lead_time: float | None = None,
        was_cancelled: bool | None = None,
        ground_truth: bool | None = None,
        force: bool = False,
    ) -> Annotation:
        """Change what is given; the version grows by one. The change is made only if the
        annotation is still at the version this object holds (``ConflictError`` with code
        ``version_mismatch`` if someone changed it since: ``refresh()`` and redo), unless
        ``force=True``."""
        given = {
            "result": result,
            "lead_time": lead_time,
            "was_cancelled": was_cancelled,
            "ground_truth": ground_truth,
        }
        body: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if not force:
            body["version"] = self.version
        self._replace(self.client._json("PATCH", self._path, json=body, once=True))
        return self

    def delete(self) -> None:
        """Delete the annotation; its task is recounted."""
        self.client.request("DELETE", self._path, once=True)


class Prediction(schemas.Prediction, _Bound):
    """A model's prediction for a task: its fields and deleting it."""

    def __repr__(self) -> str:
        return f"<Prediction {self.id} task {self.data_row_id} {self.model_version!r}>"

    def delete(self) -> None:
        self.client.request("DELETE", f"/predictions/{self.id}", once=True)
