"""A dataset id always means that dataset, whatever other datasets are named: a path segment
of ASCII digits is an id, a name of digits is found by ``GET /datasets?name=`` (SDK
``get_dataset_by_name``), and other names still work in paths."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from tests.conftest import Tenant
from tether import Client
from tether.sdk import NotFoundError

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")

ARABIC_INDIC = {ord(d): 0x0660 + int(d) for d in "0123456789"}  # ٠١٢...
FULLWIDTH = {ord(d): 0xFF10 + int(d) for d in "0123456789"}  # U+FF10...

# Names that look like the id of another dataset; ``digits`` says the API reads them as an id.
LOOKALIKES: list[tuple[str, Callable[[int], str], bool]] = [
    ("same", lambda i: str(i), True),
    ("zero-padded", lambda i: f"00{i}", True),
    ("leading space", lambda i: f" {i}", False),  # stored stripped: the same name as "same"
    ("decimal", lambda i: f"{i}.0", False),
    ("negative", lambda i: f"-{i}", False),
    ("arabic-indic", lambda i: str(i).translate(ARABIC_INDIC), False),
    ("fullwidth", lambda i: str(i).translate(FULLWIDTH), False),
    ("plus", lambda i: f"+{i}", False),
]


def ndjson(tag: str, n: int) -> bytes:
    return b"".join(
        orjson.dumps({"row_data": f"s3://b/{tag}/{i}.jpg", "global_key": f"{tag}-{i}"}) + b"\n"
        for i in range(n)
    )


def export(tenant: Tenant, segment: str) -> list[dict[str, Any]]:
    r = tenant.get(f"/datasets/{segment}/export")
    assert r.status_code == 200, r.text
    return [orjson.loads(line) for line in r.content.splitlines() if line]


@pytest.fixture
def pair(tenant: Tenant, request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dataset with 3 rows, and one named like its id (by the parametrized lookalike)."""
    target = tenant.dataset()
    tenant.import_rows(target["id"], ndjson(f"t{uuid.uuid4().hex[:6]}", 3))
    named = tenant.dataset(request.param(int(target["id"])))
    tenant.import_rows(named["id"], ndjson(f"n{uuid.uuid4().hex[:6]}", 5))
    return target, named


@pytest.mark.parametrize(
    "pair", [f for _, f, _ in LOOKALIKES], ids=[n for n, _, _ in LOOKALIKES], indirect=True
)
def test_the_id_means_its_dataset_through_every_operation(
    tenant: Tenant, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    target, named = pair
    tid = target["id"]
    for segment in (str(tid), f"0{tid}", f"000{tid}"):
        assert tenant.get(f"/datasets/{segment}").json()["id"] == tid
    assert len(export(tenant, str(tid))) == 3
    job = tenant.import_rows(tid, ndjson(f"more{uuid.uuid4().hex[:6]}", 2))
    assert job["dataset_id"] == tid
    assert len(export(tenant, str(tid))) == 5
    assert tenant.get(f"/datasets/{tid}", params={"with_count": True}).json()["row_count"] == 5
    new = f"renamed-{uuid.uuid4().hex[:6]}"
    assert tenant.patch(f"/datasets/{tid}", json={"name": new}).json()["id"] == tid
    r = tenant.delete(f"/datasets/{tid}")
    assert r.status_code == 202 and r.json()["deleted_rows"] == 5
    # Gone: the id does not fall back to the dataset named like it.
    for call in (
        lambda: tenant.get(f"/datasets/{tid}"),
        lambda: tenant.get(f"/datasets/{tid}/export"),
        lambda: tenant.delete(f"/datasets/{tid}"),
        lambda: tenant.patch(f"/datasets/{tid}", json={"description": "x"}),
        lambda: tenant.post(f"/datasets/{tid}/data-rows", content=ndjson("late", 1)),
    ):
        r = call()
        assert r.status_code == 404, r.text
        assert f"no dataset with id {tid}" in r.json()["error"]["message"]
    survivor = tenant.get("/datasets", params={"name": named["name"]}).json()["items"]
    assert [d["id"] for d in survivor] == [named["id"]]
    assert len(export(tenant, str(named["id"]))) == 5


@pytest.mark.parametrize(("label", "make", "digits"), LOOKALIKES, ids=[n for n, *_ in LOOKALIKES])
def test_a_name_is_found_by_the_explicit_lookup_and_in_a_path_unless_digits(
    tenant: Tenant, label: str, make: Callable[[int], str], digits: bool
) -> None:
    other = tenant.dataset()
    name = make(int(other["id"]) + 10**6)  # like an id that does not exist
    named = tenant.dataset(name)
    by_name = tenant.get("/datasets", params={"name": name}).json()["items"]
    assert [d["id"] for d in by_name] == [named["id"]]
    r = tenant.get(f"/datasets/{quote(name, safe='')}")
    if digits:
        assert r.status_code == 404  # digits are an id, and there is no such id
    else:
        assert r.status_code == 200 and r.json()["id"] == named["id"], (label, r.text)


def test_the_name_lookup_is_scoped_and_exact(tenant: Tenant, other_tenant: Tenant) -> None:
    name = f"Street-{uuid.uuid4().hex[:6]}"
    mine = tenant.dataset(name)
    other_tenant.dataset(name)
    assert [d["id"] for d in tenant.get("/datasets", params={"name": name}).json()["items"]] == [
        mine["id"]
    ]
    for miss in (name.lower(), name + "x", name[:-1], ""):
        assert tenant.get("/datasets", params={"name": miss}).json()["items"] == []
    assert (
        tenant.get("/datasets", params={"name": f"  {name} "}).json()["items"][0]["id"]
        == (mine["id"])
    )


@pytest.mark.parametrize("segment", ["0", "2147483648", "9" * 40])
def test_ids_out_of_range_are_404(tenant: Tenant, segment: str) -> None:
    tenant.dataset(segment)  # a dataset named so does not answer for it
    r = tenant.get(f"/datasets/{segment}")
    assert r.status_code == 404, r.text


def test_the_sdk_addresses_by_id_and_looks_names_up_explicitly(tenant: Tenant, http: Any) -> None:
    from tests.test_sdk_transport import AppTransport

    with Client("http://testserver", api_key=tenant.key, transport=AppTransport(http)) as sdk:
        target = sdk.create_dataset(f"t-{uuid.uuid4().hex[:6]}")
        named = sdk.create_dataset(str(target.id))
        padded = sdk.create_dataset(f"0{target.id}")
        assert sdk.get_dataset(target.id).id == target.id
        assert sdk.get_dataset(str(target.id)).id == target.id
        assert sdk.get_dataset_by_name(str(target.id)).id == named.id
        assert sdk.get_dataset_by_name(f"0{target.id}").id == padded.id
        assert sdk.get_dataset(target.name).id == target.id  # a non-digit name: looked up
        named.update(description="the named one")
        assert sdk.get_dataset(target.id).description == ""
        assert named.delete() == 0
        assert sdk.get_dataset(target.id).id == target.id
        with pytest.raises(NotFoundError, match="no dataset named"):
            sdk.get_dataset_by_name(str(target.id))
        assert target.delete() == 0
        with pytest.raises(NotFoundError):
            sdk.get_dataset(target.id)
        assert sdk.get_dataset_by_name(f"0{target.id}").id == padded.id
