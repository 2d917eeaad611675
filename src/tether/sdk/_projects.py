"""Project: a labeling project of the SDK, over ``/projects``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import IO, Any, Literal, overload

from tether import schemas
from tether.sdk import _export
from tether.sdk._bound import _Bound


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
