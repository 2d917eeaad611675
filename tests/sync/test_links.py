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
from tether.sync import diff, links
from tether.sync.diff import OutOfOrder, Same, merge

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


def _merged(place: Place, storage_id: int, listed: list[ObjectInfo], size: int, **bounds: str):
    """What ``merge`` says of each key (new, missing, same, changed) and how many came as
    runs of ``Same``."""
    pages = [listed[i : i + size] for i in range(0, len(listed), size)]
    seen: dict[str, str] = {}
    runs = 0
    for item in merge(pages, links.Links(place.engine, storage_id), **bounds):
        if isinstance(item, Same):
            runs += item.objects
            continue
        info, linked = item
        key = info.key if info is not None else linked.key  # type: ignore[union-attr]
        assert key not in seen, key
        if linked is None:
            seen[key] = "new"
        elif info is None:
            seen[key] = "missing"
        else:
            seen[key] = "same" if linked.version == info.etag else "changed"
    return seen, runs


@pytest.mark.parametrize("size", [1, 2, 4, 100])
def test_merge_pairs_every_key_once_whatever_the_keys_hold(
    place: Place, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing whose batches hold keys and versions with the separator and without, new
    keys, changed ones, and links missing before, between and after the listed batches:
    each key comes out once, as what it is; unchanged batches as runs of ``Same``."""
    monkeypatch.setattr(diff, "BATCH", size)
    storage_id = place.storage("memory", {"bucket": "links"})
    keys = sorted({*AWKWARD, *ODD}, key=str.encode)
    expected = _fill(place, storage_id, keys[1:])  # the first key is new
    versions: dict[str, set[str]] = {}
    for key, _index, _row, version in expected:
        versions.setdefault(key, set()).add(version)
    gone = {keys[1], keys[9], keys[-1]}  # before, between and after listed keys
    changed = keys[12]
    want: dict[str, str] = {keys[0]: "new", changed: "changed"}
    listed = []
    for key in keys:
        if key in gone:
            want[key] = "missing"
            continue
        if key == changed:
            version = "changed"
        elif key in versions:
            version = min(versions[key])  # a key with several items: not one "same" pair
            want.setdefault(key, "same" if len(versions[key]) == 1 else "changed")
        else:
            version = "new"
        listed.append(ObjectInfo(key, 1, version, None))
    seen, runs = _merged(place, storage_id, listed, 3)
    assert {key: state for key, state in seen.items() if state != "same"} == {
        key: state for key, state in want.items() if state != "same"
    }
    same_keys = {key for key, state in want.items() if state == "same"}
    assert runs + sum(state == "same" for state in seen.values()) == len(same_keys)
    if size == 1:
        assert runs > 0  # whole batches compared at once where the strings tell


def test_merge_takes_the_listed_range_only(place: Place) -> None:
    storage_id = place.storage("memory", {"bucket": "links"})
    keys = [f"k{n:02d}" for n in range(20)]
    _fill(place, storage_id, keys)
    listed = [ObjectInfo(key, 1, "other", None) for key in keys[6:9]]
    seen, _runs = _merged(place, storage_id, listed, 2, after="k03", until="k10")
    assert seen == {
        "k04": "missing",
        "k05": "missing",
        "k06": "changed",
        "k07": "changed",
        "k08": "changed",
        "k09": "missing",
        "k10": "missing",
    }


@pytest.mark.parametrize("batch", [1, 2, 5000])
def test_merge_refuses_a_listing_out_of_order(
    place: Place, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diff, "BATCH", batch)
    storage_id = place.storage("memory", {"bucket": "links"})
    _fill(place, storage_id, ["a", "b", "c"])
    for listed in (["b", "a"], ["a", "a"], ["a", "b", "b"]):
        infos = [ObjectInfo(key, 1, "x", None) for key in listed]
        with pytest.raises(OutOfOrder):
            _merged(place, storage_id, infos, 2)
