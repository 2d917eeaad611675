"""``GET /api/v1/storages/{id}/proxy?key=&token=``: an object streamed through tether on the
authority of its token alone, on real stores (a folder under the document root, a private
redis-server, moto S3), each on SQLite and PostgreSQL: the right bytes and headers, Range and
If-None-Match, and every wrong token refused. Then ``/data/local-files/`` with a token."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine, delete, update

from tests.conftest import Tenant
from tests.storages.conftest import redis_server  # noqa: F401 - a fixture
from tests.storages.servers import MotoS3, moto_s3  # noqa: F401 - a fixture
from tether.config import Settings
from tether.db.tables import storages
from tether.resolve import proxy, urls
from tether.sync.connections import get_record, insert_storage

DATA = bytes(range(256)) * 40 + b"end"  # 10,243 bytes
KEY = "img/a b#1.jpg"


@dataclass
class Proxied:
    """A storage of ``tenant`` on a real store, and a way to put objects there without
    tether (the file system, redis-py, boto3)."""

    tenant: Tenant
    settings: Settings
    storage_id: int
    put: Callable[[str, bytes], None]

    def url(self, key: str = KEY, ttl: int = 60, org_id: int | None = None) -> str:
        org = self.tenant.org_id if org_id is None else org_id
        return urls.proxy_url(self.settings, org, self.storage_id, key, ttl)

    def get(self, url: str | None = None, **headers: str) -> Any:
        return self.tenant.http.get(url or self.url(), headers=headers)  # no credentials


@pytest.fixture
def served_settings(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The app's own settings, with local serving on and loopback reachable."""
    root = tmp_path / "documents"
    root.mkdir()
    monkeypatch.setattr(settings, "local_files_serving_enabled", True)
    monkeypatch.setattr(settings, "local_files_document_root", root)
    monkeypatch.setattr(settings, "outbound_allowlist", "127.0.0.1")
    return settings


def _storage(engine: Engine, settings: Settings, tenant: Tenant, type_: str, fields: Any) -> int:
    with engine.begin() as conn:
        return insert_storage(
            conn, settings, org_id=tenant.org_id, type_=type_, fields=fields, use_signed_urls=False
        )


def _local(engine: Engine, settings: Settings, tenant: Tenant) -> Proxied:
    assert settings.local_files_document_root is not None
    folder = settings.local_files_document_root / f"store-{uuid.uuid4().hex[:6]}"
    folder.mkdir()

    def put(key: str, data: bytes) -> None:
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(data)

    storage_id = _storage(engine, settings, tenant, "local", {"path": str(folder)})
    return Proxied(tenant, settings, storage_id, put)


def _redis(engine: Engine, settings: Settings, tenant: Tenant, port: int) -> Iterator[Proxied]:
    import redis

    db = 4
    raw = redis.Redis(port=port, db=db)
    raw.flushdb()  # a private server; tests run one at a time
    fields = {"host": "127.0.0.1", "port": port, "db": db}

    def put(key: str, data: bytes) -> None:
        raw.set(key.encode(), data)

    yield Proxied(tenant, settings, _storage(engine, settings, tenant, "redis", fields), put)
    raw.close()


def _s3(engine: Engine, settings: Settings, tenant: Tenant, moto: MotoS3) -> Proxied:
    bucket = moto.new_bucket()
    client = moto.client()
    fields = {
        "bucket": bucket,
        "endpoint_url": moto.url,
        "access_key_id": moto.access_key_id,
        "secret_access_key": moto.secret_access_key,
        "max_retries": 0,
    }

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=data)

    return Proxied(tenant, settings, _storage(engine, settings, tenant, "s3", fields), put)


@pytest.fixture(params=["local", "redis", "s3"])
def place(
    request: pytest.FixtureRequest, engine: Engine, served_settings: Settings, tenant: Tenant
) -> Iterator[Proxied]:
    if request.param == "redis":
        yield from _redis(engine, served_settings, tenant, request.getfixturevalue("redis_server"))
    elif request.param == "local":
        yield _local(engine, served_settings, tenant)
    else:
        yield _s3(engine, served_settings, tenant, request.getfixturevalue("moto_s3"))


@pytest.fixture
def filled(place: Proxied) -> Proxied:
    place.put(KEY, DATA)
    return place


def test_the_object_streams_with_its_headers_and_no_credentials(filled: Proxied) -> None:
    response = filled.get()
    assert response.status_code == 200, response.text
    assert response.content == DATA
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    cache = response.headers["cache-control"]
    assert cache.startswith("private, max-age=")
    assert 0 < int(cache.rsplit("=", 1)[1]) <= 60  # never past the token's life
    filled.put("notes/read me.txt", b"hello")
    text = filled.get(filled.url("notes/read me.txt"))
    assert text.content == b"hello" and text.headers["content-type"].startswith("text/plain")


def test_head_answers_the_headers_of_get_without_the_bytes(filled: Proxied) -> None:
    got = filled.get()
    head = filled.tenant.http.head(filled.url())
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "accept-ranges"):
        assert head.headers[name] == got.headers[name], name
    part = filled.tenant.http.head(filled.url(), headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == b""
    assert part.headers["content-length"] == "10"
    assert part.headers["content-range"] == f"bytes 10-19/{len(DATA)}"
    assert filled.tenant.http.head(filled.url() + "x").status_code == 403


@pytest.mark.parametrize(
    ("range_", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=1000-", 1000, len(DATA)),
        ("bytes=-10", len(DATA) - 10, len(DATA)),
        ("bytes=-100000", 0, len(DATA)),
        ("bytes=5-5", 5, 6),
        ("bytes=10000-99999999", 10000, len(DATA)),
        (f"bytes={len(DATA) - 1}-", len(DATA) - 1, len(DATA)),
    ],
)
def test_a_range_is_exactly_its_slice(filled: Proxied, range_: str, start: int, end: int) -> None:
    response = filled.get(Range=range_)
    assert response.status_code == 206, response.text
    assert response.content == DATA[start:end]
    assert response.headers["content-length"] == str(end - start)
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"


@pytest.mark.parametrize("range_", [f"bytes={len(DATA)}-", "bytes=999999-", "bytes=-0"])
def test_a_range_past_the_end_is_416(filled: Proxied, range_: str) -> None:
    response = filled.get(Range=range_)
    assert response.status_code == 416
    assert response.json()["error"]["code"] == "range_not_satisfiable"
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("range_", ["bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=x-"])
def test_several_or_malformed_ranges_get_the_whole_object(filled: Proxied, range_: str) -> None:
    response = filled.get(Range=range_)
    assert response.status_code == 200 and response.content == DATA


def test_if_none_match_is_304_until_the_object_changes(filled: Proxied) -> None:
    etag = filled.get().headers["etag"]
    unchanged = filled.get(**{"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    assert filled.get(**{"If-None-Match": f'W/{etag}, "x"'}).status_code == 304
    assert filled.get(**{"If-None-Match": '"other"'}).status_code == 200
    time.sleep(0.01)  # a file's mtime moves on
    filled.put(KEY, DATA + b"changed")
    changed = filled.get(**{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.content == DATA + b"changed"
    assert changed.headers["etag"] != etag
    stale = filled.get(**{"Range": "bytes=0-9", "If-Range": etag})
    assert stale.status_code == 200 and stale.content == DATA + b"changed"


def _altered(url: str) -> str:
    token = parse_qs(urlsplit(url).query)["token"][0]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    return url.replace(token, flipped)


def test_wrong_tokens_are_403(
    filled: Proxied, other_tenant: Tenant, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = urls.PROXY_PATH.format(storage_id=filled.storage_id)
    other_key = filled.url("img/other.jpg").replace("img%2Fother.jpg", "img%2Fa+b%231.jpg")
    sibling = _storage(engine, filled.settings, filled.tenant, "memory", {})
    other_storage = urls.proxy_url(filled.settings, filled.tenant.org_id, sibling, KEY, 60)
    wrong = {
        "no token": f"{path}?key=img/a+b%231.jpg",
        "empty token": f"{path}?key=img/a+b%231.jpg&token=",
        "altered": _altered(filled.url()),
        "for another key": other_key,
        "for another storage": other_storage.replace(f"/{sibling}/", f"/{filled.storage_id}/"),
        "of another organization": filled.url(org_id=other_tenant.org_id),
    }
    for why, url in wrong.items():
        response = filled.get(url)
        assert response.status_code == 403, (why, response.text)
        assert response.json()["error"]["code"] == "forbidden", why
    assert filled.get().status_code == 200  # the right token, meanwhile
    url, now = filled.url(ttl=60), time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    expired = filled.get(url)
    assert expired.status_code == 403 and "expired" in expired.json()["error"]["message"]


def test_a_missing_object_or_a_deleted_storage_is_404(filled: Proxied, engine: Engine) -> None:
    missing = filled.get(filled.url("img/missing.jpg"))
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["code"] == "object_not_found"
    url = filled.url()
    with engine.begin() as conn:
        conn.execute(delete(storages).where(storages.c.id == filled.storage_id))
    gone = filled.get(url)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_a_large_object_streams_whole_and_in_ranges(place: Proxied) -> None:
    big = bytes(range(251)) * 12_000  # 3 MB: several of the backends' 1 MiB blocks
    place.put("clip.mp4", big)
    whole = place.get(place.url("clip.mp4"))
    assert whole.content == big and whole.headers["content-type"] == "video/mp4"
    start = 1_500_001
    part = place.get(place.url("clip.mp4"), Range=f"bytes={start}-{start + 1_200_000}")
    assert part.status_code == 206 and part.content == big[start : start + 1_200_001]


# -- the cache of opened backends -----------------------------------------------------------


def test_a_backend_is_reused_until_its_storage_changes(
    engine: Engine, served_settings: Settings, tenant: Tenant
) -> None:
    place = _local(engine, served_settings, tenant)
    cache = proxy.BackendCache(size=2)
    with engine.connect() as conn:
        record = get_record(conn, served_settings, tenant.org_id, place.storage_id)
    first = cache.get(served_settings, record)
    assert cache.get(served_settings, record) is first
    with engine.begin() as conn:
        later = datetime.now(UTC) + timedelta(seconds=1)
        conn.execute(
            update(storages).where(storages.c.id == place.storage_id).values(updated_at=later)
        )
        edited = get_record(conn, served_settings, tenant.org_id, place.storage_id)
    assert cache.get(served_settings, edited) is not first


# -- Range parsing, as a table ---------------------------------------------------------------

RANGES = [
    (None, 100, None),
    ("", 100, None),
    ("bytes=0-0", 100, (0, 1)),
    ("bytes=0-", 100, (0, 100)),
    ("bytes=99-", 100, (99, 100)),
    ("bytes=-1", 100, (99, 100)),
    ("bytes=-500", 100, (0, 100)),
    ("bytes=10-5000", 100, (10, 100)),
    (" bytes = 1 - 2 ", 100, (1, 3)),
    ("bytes=1-2,4-5", 100, None),
    ("bytes=5-1", 100, None),
    ("bytes=-", 100, None),
    ("bits=0-1", 100, None),
]


@pytest.mark.parametrize(("header", "size", "expected"), RANGES)
def test_byte_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert proxy.byte_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0)]
)
def test_byte_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(proxy.RangeNotSatisfiable):
        proxy.byte_range(header, size)


# -- /data/local-files/ with a token ---------------------------------------------------------


def test_local_files_take_a_token_instead_of_a_caller(
    engine: Engine,
    served_settings: Settings,
    tenant: Tenant,
    other_tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = served_settings.local_files_document_root
    assert root is not None
    (root / "covered").mkdir()
    (root / "covered" / "a b#1.jpg").write_bytes(DATA)
    (root / "covered" / "b.jpg").write_bytes(b"b")
    _storage(engine, served_settings, tenant, "local", {"path": str(root / "covered")})

    def url(d: str, org_id: int = tenant.org_id, ttl: int = 60) -> str:
        return urls.local_file_url(served_settings, org_id, d, ttl)

    response = tenant.http.get(url("covered/a b#1.jpg"))  # no headers at all
    assert response.status_code == 200, response.text
    assert response.content == DATA and response.headers["content-type"] == "image/jpeg"
    ranged = tenant.http.get(url("covered/a b#1.jpg"), headers={"Range": "bytes=-3"})
    assert ranged.status_code == 206 and ranged.content == b"end"
    for_b = url("covered/b.jpg")
    swapped = for_b.replace("covered%2Fb.jpg", "covered%2Fa+b%231.jpg")
    assert tenant.http.get(swapped).status_code == 403  # a token for another path
    assert tenant.http.get(_altered(for_b)).status_code == 403
    assert tenant.http.get(url("covered/b.jpg", org_id=other_tenant.org_id)).status_code == 403
    bare = tenant.http.get(urls.LOCAL_FILES_PATH, params={"d": "covered/b.jpg"})
    assert bare.status_code == 401
    later, now = url("covered/b.jpg"), time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    assert tenant.http.get(later).status_code == 403


# -- reading ahead ---------------------------------------------------------------------------


def _watched(blocks: list[bytes], closed: list[bool], fail: bool = False) -> Iterator[bytes]:
    try:
        yield from blocks
        if fail:
            raise OSError("the store broke mid-stream")
    finally:
        closed.append(True)


def _until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)


async def _take(ahead: proxy.ReadAhead, n: int | None = None) -> list[bytes]:
    taken = []
    async for block in ahead:
        taken.append(block)
        if n is not None and len(taken) == n:
            break
    return taken


def test_read_ahead_gives_every_block_in_order_and_closes_its_source() -> None:
    blocks = [bytes([i]) * 1000 for i in range(20)]
    closed: list[bool] = []
    assert asyncio.run(_take(proxy.ReadAhead(_watched(blocks, closed), depth=2))) == blocks
    _until(lambda: bool(closed))
    assert closed == [True]


def test_read_ahead_stops_when_closed_and_raises_the_stores_error() -> None:
    closed: list[bool] = []
    read: list[int] = []

    def counted() -> Iterator[bytes]:
        try:
            for i in range(100):
                read.append(i)
                yield b"a"
        finally:
            closed.append(True)

    async def one_then_close() -> list[bytes]:
        ahead = proxy.ReadAhead(counted(), depth=2)
        taken = await _take(ahead, 1)
        ahead.close()  # the client went away: the reader stops, bounded by depth
        source = _watched([b"b", b"c"], closed)
        next(source)  # started, as the backend's read is when the answer begins
        idle = proxy.ReadAhead(source)
        idle.close()  # never iterated: its source is closed at once, by close itself
        return taken

    assert asyncio.run(one_then_close()) == [b"a"]
    _until(lambda: len(closed) == 2)
    assert closed == [True, True]
    assert len(read) <= 4  # one taken, at most depth (2) ahead, one in flight

    async def broken() -> None:
        ahead = proxy.ReadAhead(_watched([b"x"], [], fail=True))
        assert await ahead.__anext__() == b"x"
        with pytest.raises(OSError, match="mid-stream"):
            await ahead.__anext__()
        with pytest.raises(StopAsyncIteration):
            await ahead.__anext__()

    asyncio.run(broken())


class _Recording:
    """A real backend, its reads recorded: what a Range asks of the store."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.reads: list[tuple[int, int | None]] = []

    def stat(self, key: str) -> Any:
        return self.backend.stat(key)

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        self.reads.append((start, end))
        return self.backend.read(key, start=start, end=end)  # type: ignore[no-any-return]


def test_a_range_reads_only_its_slice_from_the_store(
    place: Proxied, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[_Recording] = []
    real = proxy.open_backend

    def recording(settings: Settings, record: Any) -> Any:
        opened.append(_Recording(real(settings, record)))
        return opened[-1]

    monkeypatch.setattr(proxy, "open_backend", recording)
    size = 3_000_000
    place.put("clip.mp4", bytes(size))
    assert place.get(place.url("clip.mp4"), Range="bytes=-1000").content == bytes(1000)
    assert place.get(place.url("clip.mp4"), Range="bytes=2000000-2000009").status_code == 206
    assert place.get(place.url("clip.mp4")).content == bytes(size)
    assert len(opened) == 1  # opened once, then reused
    assert opened[0].reads == [(size - 1000, size), (2_000_000, 2_000_010), (0, size)]


class _Closing(_Recording):
    """A real backend whose reads record the bytes they give and when they are closed."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self.given = 0
        self.closed: list[bool] = []

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            for block in super().read(key, start=start, end=end):
                self.given += len(block)
                yield block
        finally:
            self.closed.append(True)


@pytest.mark.parametrize("place", ["local", "s3"], indirect=True)  # redis: one block a value
def test_a_client_that_goes_away_stops_the_read_and_closes_the_stores_stream(
    place: Proxied, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client goes away after the first block, as uvicorn tells an app (``receive``
    gives ``http.disconnect``; ``send`` then does nothing): the store's stream is closed at
    once and read no further than the read-ahead, not to its end."""
    opened: list[_Closing] = []
    real = proxy.open_backend

    def closing(settings: Settings, record: Any) -> Any:
        opened.append(_Closing(real(settings, record)))
        return opened[-1]

    monkeypatch.setattr(proxy, "open_backend", closing)  # a new storage: opened afresh
    size = 32 * 1024 * 1024  # many blocks of every backend
    place.put("long.mp4", bytes(size))
    path, _, query = place.url("long.mp4").partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # uvicorn's
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[bytes] = []

    async def call() -> None:
        gone = asyncio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not gone.is_set():
                sent.append(message["body"])
                gone.set()  # the client leaves after the first block

        await asyncio.wait_for(app(scope, receive, send), timeout=30)
        deadline = time.monotonic() + 5  # the loop lives on, as a server's does
        while not (opened and opened[0].closed) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(call())
    assert len(sent) == 1 and 0 < len(sent[0]) < size
    assert len(opened) == 1
    assert opened[0].closed == [True]
    assert opened[0].given < size // 2
