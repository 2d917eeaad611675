"""A short schemathesis run over every operation of the document, on both databases: no
answer is a 5xx, and every answer (status, content type, body, headers) is one the document
describes. Each operation runs on generated input, and then again with its path naming things
that exist (a dataset, a data row, a job, a metadata field), so the 2xx answers are checked
too.

Not checked: that every schema-valid request is accepted (``positive_data_acceptance``). Some
rules are not schema-shaped: a name may be taken (409), a text may not hold NUL, a filter's
field must exist."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine

from tests.conftest import Tenant
from tether.api.app import create_app
from tether.config import Settings
from tether.projects import labels
from tether.sync.connections import insert_storage

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import schemathesis
    from schemathesis import checks

pytestmark = pytest.mark.slow
EXAMPLES = 4
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
    checks.ignored_auth,
]


def _existing(tenant: Tenant, engine: Engine, settings: Settings) -> dict[str, Any]:
    """Path parameter values that name real things of the tenant."""
    ds = tenant.dataset()
    with engine.begin() as conn:  # (an in-memory store: no server to reach)
        storage_id = insert_storage(
            conn, settings, org_id=tenant.org_id, type_="memory", fields={}, dataset_id=ds["id"]
        )
    rows = b"".join(
        b'{"row_data": "s3://b/%d.jpg", "global_key": "st-%d", '
        b'"metadata_fields": [{"name": "tag", "value": "t"}], '
        b'"attachments": [{"type": "TEXT", "value": "a note"}]}\n' % (i, i)
        for i in range(3)
    )
    job = tenant.import_rows(ds["id"], rows + b'{"global_key": "no row_data"}\n')
    field = tenant.post("/metadata-schema", json={"name": "weather", "kind": "string"}).json()
    row = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"][0]
    # Another user and a spare key: deleting them leaves the tenant's own key working.
    other = tenant.post("/users", json={"email": f"st-{ds['id']}-{row['id']}@example.com"})
    spare = tenant.post("/api-keys", json={"name": "spare"})
    assert other.status_code == 201 and spare.status_code == 201, (other.text, spare.text)
    # A project whose task (the row) has an annotation and a prediction.
    project = tenant.post(
        "/projects", json={"name": f"st-{ds['id']}", "template": "image-boxes"}
    ).json()
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, project["id"], [row["id"]])
        (prediction_id,) = labels.insert_predictions(
            conn,
            [
                {
                    "org_id": tenant.org_id,
                    "project_id": project["id"],
                    "data_row_id": row["id"],
                    "result": [],
                }
            ],
        )
    path = f"/projects/{project['id']}/tasks/{row['id']}/annotations"
    annotation = tenant.post(path, json={"result": []}).json()
    return {
        "project": str(project["id"]),
        "data_row_id": row["id"],
        "annotation_id": annotation["id"],
        "prediction_id": prediction_id,
        "dataset": str(ds["id"]),
        "row_id": row["id"],
        "job_id": job["id"],
        "field": field["id"],
        "user_id": other.json()["id"],
        "key_id": spare.json()["id"],
        "storage_id": storage_id,
    }


def _runner(
    operation: Any, path: dict[str, Any] | None, headers: dict[str, str], seen: list[int]
) -> Any:
    """A hypothesis test of one operation; ``path`` replaces generated path parameters."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if path is not None and case.path_parameters:
            case.path_parameters = {k: path[k] for k in case.path_parameters}
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        seen.append(response.status_code)

    return run


def test_every_operation_answers_as_documented(
    settings: Settings, engine: Engine, tenant: Tenant
) -> None:
    # An app of its own: schemathesis runs the app's lifespan, whose end stops the job queue,
    # and the session's app must keep running imports for the tests after this one.
    app = create_app(settings, migrate=False)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    existing = _existing(tenant, engine, settings)
    failures = []
    seen: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        named = "{" in operation.path
        for path in (None, existing) if named else (None,):
            try:
                _runner(operation, path, tenant.headers, seen)()
            except BaseException as exc:  # a FailureGroup: keep going, report them all
                failures.append(f"{operation.label} (path {path}):\n{exc}")
    assert not failures, "\n\n".join(failures)
    assert len(seen) >= 2 * len(operations)
    assert {200, 201, 204, 404, 422} <= set(seen), sorted(set(seen))
