"""A place (organization + dataset) with local folders allowed under a document root, and
loopback test servers reachable (``outbound_allowlist``): the sync tests' own fixtures."""

from __future__ import annotations

from tests.storages.servers import moto_s3  # noqa: F401 - a fixture
from tests.sync.conftest import place, sync_settings  # noqa: F401 - fixtures
