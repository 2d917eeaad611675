"""Project: a labeling project of the SDK, over ``/projects``."""

from __future__ import annotations

from typing import Any

from tether import schemas
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
