"""Syncing an S3 bucket on a moto server process (real HTTP, the real S3 API): awkward keys,
plain-string prefixes, a re-sync that creates nothing, changed and deleted objects."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.storages.servers import MotoS3, moto_s3  # noqa: F401 - a fixture
from tests.sync.helpers import Place, counts, expect
from tests.sync.test_sync import AWKWARD
from tether.storages.registry import open_storage


def _fields(moto: MotoS3, bucket: str, prefix: str = "") -> dict[str, Any]:
    return {
        "bucket": bucket,
        "prefix": prefix,
        "endpoint_url": moto.url,
        "access_key_id": moto.access_key_id,
        "secret_access_key": moto.secret_access_key,
        "max_retries": 0,
    }


def _seed(moto: MotoS3, keys: list[str]) -> str:
    bucket = moto.new_bucket()
    store = open_storage("s3", **_fields(moto, bucket))
    for key in keys:
        store.write(key, key.encode())
    return bucket


def test_an_s3_bucket_syncs_exactly(place: Place, moto_s3: MotoS3) -> None:  # noqa: F811
    bucket = _seed(moto_s3, AWKWARD)
    storage_id = place.storage("s3", _fields(moto_s3, bucket), remove_missing=True)
    first = place.sync(storage_id, chunk_objects=4)
    assert first["status"] == "completed", first
    assert counts(first) == expect(listed=len(AWKWARD), created=len(AWKWARD))
    links = place.links(storage_id)
    assert [link.key for link in links] == sorted(AWKWARD)
    uris = sorted(orjson.loads(r.row_data) for r in place.rows())
    store = open_storage("s3", **_fields(moto_s3, bucket))
    assert uris == sorted(store.uri(key) for key in AWKWARD)
    assert all(uri.startswith(f"s3://{bucket}/") for uri in uris)

    again = place.sync(storage_id, chunk_objects=4)
    assert counts(again) == expect(listed=len(AWKWARD), unchanged=len(AWKWARD))

    store.write("a b.jpg", b"new content")
    store.delete("😀.jpg")
    store.write("fresh/new.png", b"x")
    job = place.sync(storage_id, chunk_objects=4)
    n = len(AWKWARD)
    assert counts(job) == expect(
        listed=n, created=1, updated=1, unchanged=n - 2, missing=1, removed=1
    )
    assert place.count() == n


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("img", ["img/1.jpg", "img2/x.jpg"]), ("img/", ["img/1.jpg"])],
)
def test_an_s3_prefix_is_a_plain_string_prefix(
    place: Place,
    moto_s3: MotoS3,  # noqa: F811
    prefix: str,
    expected: list[str],
) -> None:
    bucket = _seed(moto_s3, ["im.jpg", "img/1.jpg", "img2/x.jpg", "other/y.jpg"])
    storage_id = place.storage("s3", _fields(moto_s3, bucket, prefix))
    job = place.sync(storage_id)
    assert counts(job) == expect(listed=len(expected), created=len(expected))
    assert [link.key for link in place.links(storage_id)] == expected
    # regex_filter matches the whole key, the prefix included (as Label Studio does).
    only = place.storage("s3", _fields(moto_s3, bucket, prefix), regex_filter=r"img2/")
    place.sync(only)
    assert [link.key for link in place.links(only)] == [
        k for k in expected if k.startswith("img2/")
    ]
