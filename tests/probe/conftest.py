"""A place (organization + dataset) with local folders allowed under a document root, and
loopback test servers reachable (``outbound_allowlist``), as the sync tests have."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.storages.servers import moto_s3  # noqa: F401 - a fixture
from tests.sync.helpers import Place, new_place
from tether.config import Settings


@pytest.fixture
def probe_settings(settings: Settings, tmp_path: Path) -> Settings:
    root = tmp_path / "documents"
    root.mkdir()
    return settings.model_copy(
        update={
            "local_files_serving_enabled": True,
            "local_files_document_root": root,
            "outbound_allowlist": "127.0.0.1",
        }
    )


@pytest.fixture
def place(engine: Engine, probe_settings: Settings) -> Place:
    return new_place(engine, probe_settings)
