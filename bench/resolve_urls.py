"""The ``urls`` section of ``bench/resolve.py`` (issue 15, section 4: resolving).

    python bench/resolve.py --section urls       # 20,000 URLs on the CPU, 300 API requests
    python bench/resolve.py --section urls --urls 50000 --requests 500 --db postgresql

1. On the CPU, in this process: the resolver (``tether.resolve.resolver.Resolver``) over
   pages of 1,000 rows of ``s3://`` URIs of a source storage that signs, as the API calls it
   (candidates read from the database, each URI parsed, matched and signed). Uncached: every
   URL cache emptied before each pass (the opened backend is kept, as in a running server);
   cached: the same rows again. Beside it, the physical limit measured in the same run:
   obstore's own ``sign`` of the same keys on the same store, one call a key.
2. Through the API of a real ``tether serve`` (fresh data dir; for PostgreSQL a fresh
   database) with an S3 source storage on a moto server: p50/p95 of
   ``GET /data-rows/{id}?resolve=true`` and of a page of 100 rows
   (``GET /data-rows?dataset_id=&limit=100&resolve=true``), warm (URLs cached, as a user
   paging through a dataset sees them after the first view), beside the same requests
   without ``resolve``; one signed URL is fetched to check it downloads its object. For
   reference, the same client's p50 of ``GET /health`` (no auth, no database): what HTTP,
   uvicorn, the framework and httpx cost a request on this machine.

Targets: >= 20,000 resolved URLs/s (cached and uncached); p50 < 5 ms for one row and
< 20 ms for a page of 100 rows. The best-known open tool answers one resolved asset in
56 ms (p50) on this kind of machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import PG_DEFAULT, cli, line, moto_bucket, moto_server, pg_database, server

from tether.accounts.orgs import get_or_create_org
from tether.catalog import datasets as dataset_service
from tether.config import Settings
from tether.db.engine import make_engine
from tether.db.migrate import upgrade
from tether.resolve.resolver import Resolver
from tether.sdk import Client
from tether.storages.registry import open_storage
from tether.sync.connections import insert_storage

PAGE = 1000
PEER_ONE_ROW_MS = 56  # the best-known open tool, one resolved asset, p50 (issue 15)
ACCESS = {"access_key_id": "bench", "secret_access_key": "bench-secret"}


def keys(n: int) -> list[str]:
    return [f"img/{i // 1000:04d}/frame {i:07d}.jpg" for i in range(n)]


def s3_fields(moto: str, bucket: str) -> dict[str, Any]:
    return {"bucket": bucket, "endpoint_url": moto, "max_retries": 0, **ACCESS}


# --- 1. on the CPU ---------------------------------------------------------------------------


def cpu(args: argparse.Namespace, moto: str, work: Path) -> dict[str, float]:
    settings = Settings(data_dir=work / "cpu", outbound_allowlist="127.0.0.1", secret_key=None)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    bucket = moto_bucket(moto)
    with engine.begin() as conn:
        org_id = get_or_create_org(conn, "bench-cpu")
        dataset_id = int(dataset_service.create(conn, org_id, "cpu")["id"])
        insert_storage(
            conn, settings, org_id=org_id, type_="s3", fields=s3_fields(moto, bucket),
            dataset_id=dataset_id,
        )  # fmt: skip
    all_keys = keys(args.urls)
    rows = [
        {"id": i + 1, "dataset_id": dataset_id, "row_data": f"s3://{bucket}/{k}", "attachments": []}
        for i, k in enumerate(all_keys)
    ]
    resolver = Resolver(settings)

    def run() -> float:
        started = time.perf_counter()
        with engine.connect() as conn:
            for start in range(0, len(rows), PAGE):
                answers = resolver.resolve(conn, org_id, rows[start : start + PAGE])
                assert not answers[0]["unresolved"], answers[0]
        return time.perf_counter() - started

    run()  # warm: the backend opened, code paths loaded
    uncached = []
    for _ in range(args.rounds):
        resolver._urls.clear()
        uncached.append(run())
    cached = [run() for _ in range(args.rounds)]
    store = open_storage("s3", **s3_fields(moto, bucket))
    raw = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for key in all_keys:
            store.sign(key, timedelta(minutes=15))
        raw.append(time.perf_counter() - started)
    engine.dispose()
    n = len(rows)
    return {"uncached": n / min(uncached), "cached": n / min(cached), "raw": n / min(raw)}


# --- 2. through the API ----------------------------------------------------------------------


def api(args: argparse.Namespace, moto: str, work: Path, stack: ExitStack) -> dict[str, Any]:
    config = {
        "TETHER_DATA_DIR": str(work / "data"),
        "TETHER_OUTBOUND_ALLOWLIST": "127.0.0.1",
    }
    if args.db == "postgresql":
        config["TETHER_DATABASE_URL"] = stack.enter_context(pg_database(args.pg))
    bucket = moto_bucket(moto)
    store = open_storage("s3", **s3_fields(moto, bucket))
    page_keys = keys(args.rows)
    for key in page_keys[:3]:
        store.write(key, key.encode())
    _proc, url = stack.enter_context(server(work, config))
    email = "bench@example.com"
    cli(
        config,
        "users",
        "create",
        email,
        "--org",
        "bench",
        "--admin",
        "--password-stdin",
        stdin="pw\n",
    )
    api_key = cli(config, "keys", "create", email).strip()
    client = stack.enter_context(Client(url, api_key=api_key))
    dataset = client.create_dataset("resolve-bench")
    fields = {k: v for k, v in s3_fields(moto, bucket).items() if k != "max_retries"}
    dataset.add_source_storage("s3", **fields)
    job = dataset.create_data_rows(
        [{"row_data": f"s3://{bucket}/{k}", "global_key": k} for k in page_keys]
    )
    job.wait_till_done()
    first = next(dataset.data_rows(page_size=1, resolve=True))
    assert first.resolved is not None and not first.resolved.unresolved
    fetched = httpx.get(str(first.resolved.row_data)).content
    assert fetched == str(first.row_data).split("/", 3)[3].encode(), "the signed URL downloads"
    http = stack.enter_context(
        httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {api_key}"})
    )
    one = f"/data-rows/{first.id}"
    page = {"dataset_id": dataset.id, "limit": 100}
    resolving = {**page, "resolve": "true"}
    return timed(
        {
            "one": lambda: http.get(one, params={"resolve": "true"}),
            "one_plain": lambda: http.get(one),
            "page": lambda: http.get("/data-rows", params=resolving),
            "page_plain": lambda: http.get("/data-rows", params=page),
            "health": lambda: http.get("/health"),
        },
        args.requests,
    )


def timed(requests: dict[str, Callable[[], httpx.Response]], n: int) -> dict[str, Any]:
    """p50 and p95 in ms of ``n`` of each request, taken in turn (so a machine's changing
    load falls on all alike), after a few to warm up."""
    times: dict[str, list[float]] = {name: [] for name in requests}
    for round_ in range(n + 5):
        for name, request in requests.items():
            started = time.perf_counter()
            request().raise_for_status()
            if round_ >= 5:
                times[name].append((time.perf_counter() - started) * 1000)
    return {
        name: (statistics.median(ms), statistics.quantiles(ms, n=100)[94])
        for name, ms in times.items()
    }


def report(args: argparse.Namespace, rates: dict[str, float], lat: dict[str, Any]) -> None:
    print(f"resolve benchmark: {args.urls:,} URLs on the CPU; API on {args.db}, {args.rows} rows")
    raw = rates["raw"]
    for name in ("uncached", "cached"):
        rate = rates[name]
        detail = f"resolver, pages of {PAGE}; {rate / raw:.2f} x obstore sign ({raw:,.0f}/s)"
        line(f"URLs/s {name}", f"{rate:,.0f}", detail, ">= 20,000/s", width=22)
    for name, label, target in (("one", "one row", 5), ("page", "page of 100", 20)):
        p50, p95 = lat[name]
        plain50, _ = lat[name + "_plain"]
        detail = f"p95 {p95:.1f} ms; without resolve p50 {plain50:.1f} ms"
        line(f"{label} p50", f"{p50:.1f} ms", detail, f"< {target} ms", width=22)
    floor50, floor95 = lat["health"]
    detail = f"p95 {floor95:.1f} ms; GET /health: no auth, no database (same client)"
    line("HTTP floor p50", f"{floor50:.1f} ms", detail, width=22)
    ratio = PEER_ONE_ROW_MS / lat["one"][0]
    line(
        "vs best-known tool",
        f"{ratio:.1f} x faster",
        f"its one resolved asset: {PEER_ONE_ROW_MS} ms p50",
        width=22,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--urls", type=int, default=20_000, help="URLs resolved on the CPU")
    parser.add_argument("--rows", type=int, default=500, help="rows of the API's dataset")
    parser.add_argument("--requests", type=int, default=300, help="requests a latency")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server (admin URL)")


def urls_section(args: argparse.Namespace) -> None:
    """Resolved URLs a second on the CPU, and the API's latencies with ``resolve=true``."""
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tether-resolve-")))
        moto = stack.enter_context(moto_server(work))
        rates = cpu(args, moto, work)
        latencies = api(args, moto, work, stack)
    report(args, rates, latencies)
