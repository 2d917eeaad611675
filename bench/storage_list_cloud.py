"""Listing throughput of the obstore-backed ``Storage.list`` against a raw obstore listing of
the same bucket, in the same run (issue 14, section 1).

    python bench/storage_list_cloud.py --backend s3 --objects 20000

Starts a moto server on a free loopback port, fills one bucket with N small objects
(concurrent obstore puts), then lists the prefix holding them R times each way, alternating:
raw ``obstore.list`` (dicts only) and ``S3Storage.list`` (plain-string prefix handling,
``ObjectInfo`` per object). Prints objects/s of each (best of R) and the ratio (target
>= 0.8). moto itself is the ceiling (~5k keys/s), so the ratio is what tether adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import obstore
from _common import moto_bucket, moto_server
from obstore.store import S3Store

from tether.storages.registry import open_storage

PREFIX = "bench/img"


async def fill(store: S3Store, n: int, concurrency: int = 32) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def put(i: int) -> None:
        async with gate:
            await obstore.put_async(store, f"{PREFIX}/{i:07d}.jpg", b"x" * 64)

    await asyncio.gather(*(put(i) for i in range(n)))


def raw_list(store: S3Store) -> int:
    count = 0
    for chunk in obstore.list(store, PREFIX, chunk_size=1000):
        count += len(chunk)
    return count


def tether_list(storage: object) -> int:
    count = 0
    for page in storage.list(PREFIX + "/"):  # type: ignore[attr-defined]
        count += len(page)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["s3"], default="s3")
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    try:
        with moto_server(tmp) as url:
            measure(args, url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args: argparse.Namespace, url: str) -> None:
    bucket = moto_bucket(url)
    creds = {"access_key_id": "bench", "secret_access_key": "bench"}
    raw = S3Store(
        bucket,
        endpoint=url,
        region="us-east-1",
        client_options={"allow_http": True},
        **creds,  # type: ignore[arg-type]
    )
    started = time.perf_counter()
    asyncio.run(fill(raw, args.objects))
    print(f"filled {args.objects:,} objects in {time.perf_counter() - started:.1f} s")
    storage = open_storage("s3", bucket=bucket, endpoint_url=url, **creds)

    best = {"raw obstore.list": float("inf"), "Storage.list": float("inf")}
    for _ in range(args.repeat):
        for name, run in (
            ("raw obstore.list", lambda: raw_list(raw)),
            ("Storage.list", lambda: tether_list(storage)),
        ):
            started = time.perf_counter()
            count = run()
            elapsed = time.perf_counter() - started
            if count != args.objects:
                raise SystemExit(f"{name} listed {count}, expected {args.objects}")
            best[name] = min(best[name], elapsed)
    rates = {name: args.objects / t for name, t in best.items()}
    for name, rate in rates.items():
        print(f"{name:>18}: {rate:9,.0f} objects/s  ({best[name]:.2f} s, best of {args.repeat})")
    ratio = rates["Storage.list"] / rates["raw obstore.list"]
    print(f"{'ratio':>18}: {ratio:.3f}  (target >= 0.8)")
    print(
        json.dumps(
            {
                "objects": args.objects,
                "ratio": round(ratio, 3),
                **{k: round(v) for k, v in rates.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
