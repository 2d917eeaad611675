"""The OpenAPI document is part of the product: the checked-in copy must match the app.

Regenerate after an intended API change with
    TETHER_WRITE_OPENAPI=1 .venv/bin/python -m pytest tests/test_openapi.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tether.api.app import create_app
from tether.config import Settings

DOC = Path(__file__).parent.parent / "docs" / "openapi.json"


def _current(tmp_path: Path) -> str:
    app = create_app(Settings(data_dir=tmp_path, queue_url="immediate"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_openapi_document_is_current(tmp_path: Path) -> None:
    current = _current(tmp_path)
    if os.environ.get("TETHER_WRITE_OPENAPI"):
        DOC.write_text(current, encoding="utf-8")
    assert DOC.read_text(encoding="utf-8") == current, (
        "the API changed: regenerate docs/openapi.json (see this module's docstring)"
    )


PUBLIC = {("get", "/api/v1/health"), ("post", "/api/v1/session")}  # signing in needs no key


def test_every_route_but_health_and_sign_in_needs_a_key(tmp_path: Path) -> None:
    spec = json.loads(_current(tmp_path))
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            secured = bool(operation.get("security"))
            assert secured == ((method, path) not in PUBLIC), (method, path)
