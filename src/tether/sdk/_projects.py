"""Project: a labeling project of the SDK, over ``/projects``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether import schemas
from tether.sdk._bound import _Bound

if TYPE_CHECKING:
    from tether.sdk._client import Storage


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
