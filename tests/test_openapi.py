"""The OpenAPI document is part of the product: the checked-in copy must match the app.

Regenerate after an intended API change with
    TETHER_WRITE_OPENAPI=1 .venv/bin/python -m pytest tests/test_openapi.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from tether.api.app import create_app
from tether.config import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DOC = Path(__file__).parent.parent / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi"), queue_url="immediate"))


@pytest.fixture(scope="module")
def current(app: Any) -> str:
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_openapi_document_is_current(current: str) -> None:
    if os.environ.get("TETHER_WRITE_OPENAPI"):
        DOC.write_text(current, encoding="utf-8")
    assert DOC.read_text(encoding="utf-8") == current, (
        "the API changed: regenerate docs/openapi.json (see this module's docstring)"
    )


# Signing in needs no key; a proxied object needs its asset token only (never a 401).
TOKEN_ONLY = {
    ("get", "/api/v1/storages/{storage_id}/proxy"),
    ("head", "/api/v1/storages/{storage_id}/proxy"),
}
PUBLIC = {("get", "/api/v1/health"), ("post", "/api/v1/session"), *TOKEN_ONLY}


def test_every_route_but_health_and_sign_in_needs_a_key(current: str) -> None:
    spec = json.loads(current)
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            secured = bool(operation.get("security"))
            assert secured == ((method, path) not in PUBLIC), (method, path)


# --- the document tells the truth about errors and answers --------------------------------

ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture(scope="module")
def spec(current: str) -> dict[str, Any]:
    return json.loads(current)  # type: ignore[no-any-return]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, methods in spec["paths"].items() for m, op in methods.items()]


def test_fastapis_validation_error_shape_is_gone(current: str, spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in current
    assert '"detail"' not in current
    assert set(spec["components"]["schemas"]) >= {"ErrorResponse", "ErrorBody"}


def test_every_operation_documents_the_errors_it_can_answer(spec: dict[str, Any]) -> None:
    operations = _operations(spec)
    assert len(operations) >= 20
    for method, path, op in operations:
        where = (method, path)
        statuses = {int(s) for s in op["responses"]}
        keyless = path == "/api/v1/health" or where in TOKEN_ONLY
        expected = {422} | (set() if keyless else {401})
        if "{" in path:
            expected.add(404)
        if "requestBody" in op or (path.endswith("/data-rows") and method == "post"):
            expected.add(413)
        assert expected <= statuses, (where, statuses)
        for status in statuses - {200, 201, 202, 204, 206, 304}:  # no error body
            response = op["responses"][str(status)]
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, (where, status)
            assert response["description"], (where, status)


def test_conflicts_are_documented_where_they_happen(spec: dict[str, Any]) -> None:
    conflicts = {(m, p) for m, p, op in _operations(spec) if "409" in op["responses"]}
    assert conflicts == {
        ("post", "/api/v1/datasets"),
        ("patch", "/api/v1/datasets/{dataset}"),
        ("patch", "/api/v1/data-rows/{row_id}"),
        ("post", "/api/v1/jobs/{job_id}/cancel"),
        ("post", "/api/v1/metadata-schema"),
        ("patch", "/api/v1/metadata-schema/{field}"),
        ("delete", "/api/v1/metadata-schema/{field}"),
        ("post", "/api/v1/users"),
        ("patch", "/api/v1/users/{user_id}"),
        ("delete", "/api/v1/users/{user_id}"),
        ("put", "/api/v1/storages/{storage_id}/objects"),
        ("post", "/api/v1/projects"),
        ("patch", "/api/v1/projects/{project}"),
        ("patch", "/api/v1/annotations/{annotation_id}"),
    }


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_json_answer_and_list_item_has_a_model(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        for status in ("200", "201", "202"):
            answer = op["responses"].get(status, {})
            content = answer.get("content", {})
            if "application/json" not in content or "Content-Disposition" in answer.get(
                "headers", {}
            ):
                continue  # a file (a project export: Label Studio's JSON, COCO) has no model
            schema = content["application/json"]["schema"]
            assert "$ref" in schema, (method, path, schema)
            model = _resolve(spec, schema)
            assert model.get("properties"), (method, path)
            for name, prop in model["properties"].items():
                if prop.get("type") == "array":  # of models, or of plain scalars
                    items = prop["items"]
                    typed = items.get("type") in ("string", "integer", "number", "boolean")
                    assert "$ref" in items or typed, (method, path, name, prop)
    row = spec["components"]["schemas"]["DataRow"]
    assert {"id", "dataset_id", "global_key", "row_data", "metadata_fields"} <= set(row["required"])
    assert row["additionalProperties"] is True  # a source file's own fields come along
    for name, model in spec["components"]["schemas"].items():
        # A job's counts: its kind's own tallies; a region: Label Studio's, kept as given.
        if name not in ("DataRow", "Counts", "Region"):
            assert model.get("additionalProperties") is not True, name


# --- Swagger UI works offline -------------------------------------------------------------


def test_the_docs_page_and_its_assets_come_from_tether(app: Any) -> None:
    with TestClient(app) as http:
        page = http.get("/api/v1/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        urls += re.findall(r"""url: ?["']([^"']+)["']""", page.text)
        assert not [u for u in urls if "//" in u], urls  # nothing from another host
        assets = {u for u in urls if "/assets/" in u}
        assert {u.rsplit("/", 1)[1] for u in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
        for url in assets:
            r = http.get(url)
            assert r.status_code == 200, url
            assert len(r.content) > 500, url
        js = http.get("/api/v1/docs/assets/swagger-ui-bundle.js")
        assert "javascript" in js.headers["content-type"] and b"SwaggerUIBundle" in js.content
        css = http.get("/api/v1/docs/assets/swagger-ui.css")
        assert "text/css" in css.headers["content-type"] and b".swagger-ui" in css.content
        assert "/api/v1/openapi.json" in urls
        assert http.get("/api/v1/openapi.json").json()["openapi"].startswith("3.1")
        assert http.get("/api/v1/docs/assets/../../../etc/passwd").status_code == 404
        assert http.get("/api/v1/docs/oauth2-redirect?code=c&state=s").status_code == 200


# --- a client generated from the document -------------------------------------------------


@pytest.fixture(scope="module")
def generated(current: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """openapi-python-client run on the document: the package's folder and what it said."""
    work = tmp_path_factory.mktemp("generated")
    (work / "openapi.json").write_text(current, encoding="utf-8")
    (work / "config.json").write_text('{"post_hooks": []}', encoding="utf-8")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "openapi_python_client", "generate"),
            *("--path", str(work / "openapi.json"), "--config", str(work / "config.json")),
            *("--meta", "none", "--output-path", str(work / "tether_api_client")),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=work,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return work, result.stdout + result.stderr


def test_a_generated_client_builds_with_no_warning_but_the_ndjson_stream(
    generated: tuple[Path, str],
) -> None:
    _work, said = generated
    warned = [line for line in said.splitlines() if line.startswith("WARNING")]
    assert warned == ["WARNING parsing GET /api/v1/datasets/{dataset}/export within datasets."]
    assert said.count("Unsupported content_type application/x-ndjson") == 1
    assert "Unable to" not in said and "Skipping" not in said and "ERROR" not in said, said


def test_the_generated_models_read_real_answers(generated: tuple[Path, str]) -> None:
    work, _said = generated
    sys.path.insert(0, str(work))
    try:
        from tether_api_client import models  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(work))
    row = {
        "id": 7,
        "dataset_id": 2,
        "global_key": "k",
        "external_id": None,
        "media_type": "IMAGE",
        "row_data": "s3://b/k.jpg",
        "media_attributes": {},
        "metadata_fields": [{"schema_id": "s", "name": "tag", "value": "a"}],
        "attachments": [{"type": "TEXT", "value": "note"}],
        "created_by": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
        "camera": "left",
    }
    parsed = models.DataRow.from_dict(row)
    assert (parsed.id, parsed.global_key, parsed["camera"]) == (7, "k", "left")
    assert parsed.metadata_fields[0].name == "tag"
    error = models.ErrorResponse.from_dict(
        {"error": {"code": "not_found", "message": "no data row 7", "details": None}}
    )
    assert error.error.code == "not_found"
