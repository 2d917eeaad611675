"""Project: a labeling project of the SDK, over ``/projects``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tether import schemas
from tether.sdk._bound import _Bound
from tether.sdk._errors import NotFoundError

if TYPE_CHECKING:
    from tether.sdk._client import Dataset, Job


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
