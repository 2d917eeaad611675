"""Reading a storage's links a page at a time (``sync.links.pages``), on SQLite and
PostgreSQL: every link once, in key-byte order, whatever its key and version hold (the
separator of the aggregated read included), from any key on and up to any key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from tests.sync.helpers import Place
from tests.sync.test_sync import AWKWARD
from tether.catalog.store import reserve_ids
from tether.db.tables import data_rows
from tether.storages.base import ObjectInfo
from tether.sync import links
from tether.sync.diff import merge

# The aggregated read joins values with U+001E: keys and versions holding it are read row
# by row, and so are their pages' neighbours.
ODD = ["sep\x1einside.jpg", "\x1e", "tab\tkey.jpg", "unit\x1fsep.jpg", "zz/\x1e/deep.jpg"]
VERSIONS = ["v1", None, "", "etag\x1ewith-sep", '"0x8D9"', "12-1700000000000000000"]


def _fill(place: Place, storage_id: int, keys: list[str]) -> list[tuple[str, int, int, str]]:
    """Links for ``keys`` (every third with three items, versions of every kind) to real
    rows; the expected rows of ``pages``, in (key bytes, item) order, NULL versions as ""."""
    now = datetime.now(UTC)
    expected = []
    with place.engine.begin() as conn:
        next_id = reserve_ids(conn, 3 * len(keys))
        for n, key in enumerate(keys):
            for index in range(3 if n % 3 == 0 else 1):
                row_id, next_id = next_id, next_id + 1
                conn.execute(
                    insert(data_rows).values(
                        id=row_id,
                        org_id=place.org_id,
                        dataset_id=place.dataset_id,
                        media_type="IMAGE",
                        row_data='"x"',
                        created_at=now,
                        updated_at=now,
                    )
                )
                version = VERSIONS[(n + index) % len(VERSIONS)]
                links.insert(conn, storage_id, [(key, index, row_id, version)])
                expected.append((key, index, row_id, version or ""))
    expected.sort(key=lambda link: (link[0].encode(), link[1]))
    return expected


def _read(place: Place, storage_id: int, **bounds: object) -> list[tuple[str, int, int, str]]:
    found = []
    for page in links.pages(place.engine, storage_id, **bounds):  # type: ignore[arg-type]
        assert len({len(column) for column in page}) == 1, page
        assert page.keys, "an empty page"
        found += list(zip(*page, strict=True))
    return found


@pytest.mark.parametrize("page", [1, 2, 3, 7, 5000])
def test_pages_give_every_link_once_in_key_byte_order(place: Place, page: int) -> None:
    storage_id = place.storage("memory", {"bucket": "links"})
    other = place.storage("memory", {"bucket": "other"})
    expected = _fill(place, storage_id, AWKWARD + ODD)
    _fill(place, other, ["a.jpg", "zzz.jpg"])  # another storage's links stay out
    assert _read(place, storage_id, page=page) == expected


@pytest.mark.parametrize("cut", [0, 4, 11, 19, 24])
def test_pages_start_after_a_key_and_end_at_one(place: Place, cut: int) -> None:
    storage_id = place.storage("memory", {"bucket": "links"})
    expected = _fill(place, storage_id, AWKWARD + ODD)
    keys = sorted({key for key, *_ in expected}, key=str.encode)
    after, until = keys[cut], keys[min(cut + 6, len(keys) - 1)]
    assert _read(place, storage_id, after=after, page=2) == [e for e in expected if e[0] > after]
    assert _read(place, storage_id, after=after, until=until, page=3) == [
        e for e in expected if after < e[0] <= until
    ]
    assert _read(place, storage_id, until=after) == [e for e in expected if e[0] <= after]


def test_a_storage_without_links_reads_nothing(place: Place) -> None:
    storage_id = place.storage("memory", {"bucket": "links"})
    assert _read(place, storage_id) == []


def test_merge_pairs_a_listing_with_links_read_row_by_row_and_aggregated(place: Place) -> None:
    """A listing whose pages hold keys with the separator and without: every object paired
    with its links (unchanged ones as runs of ``Same``), new and missing ones alone."""
    storage_id = place.storage("memory", {"bucket": "links"})
    keys = sorted({*AWKWARD, *ODD}, key=str.encode)
    expected = _fill(place, storage_id, keys[1:])  # the first key is new
    version = {key: v for key, _index, _row, v in expected}
    gone = keys[5]  # listed no more
    listed = [ObjectInfo(key, 1, version.get(key, "new"), None) for key in keys if key != gone]
    pages = [listed[i : i + 4] for i in range(0, len(listed), 4)]
    seen: dict[str, str] = {}
    same = 0
    for item in merge(pages, links.pages(place.engine, storage_id, page=3)):
        if hasattr(item, "objects"):
            same += item.objects  # type: ignore[union-attr]
            continue
        info, linked = item
        key = info.key if info is not None else linked.key  # type: ignore[union-attr]
        assert key not in seen
        seen[key] = "new" if linked is None else "missing" if info is None else "paired"
    assert seen[keys[0]] == "new"
    assert seen[gone] == "missing"
    assert same + sum(state == "paired" for state in seen.values()) == len(keys) - 2
