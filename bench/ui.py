"""The web UI in a real browser at size (issue 17).

    python bench/ui.py --rows 1000000 [--tries 20] [--tasks 1000]

A `tether serve` on SQLite with one dataset of N rows (imported through the API: a local
folder of 240 small PNGs, each row one of them, with a split), then Playwright driving
Debian's Chromium, a fresh browser context (no cache) each try:
- the catalog's first page until every thumbnail has loaded (natural width > 0),
- the next page (the link),
- a filtered page (`split:eq:valid`),
- the labeling page of a project of `--tasks` of those rows until the editor shows the image.
Prints p50/p95 of each against its limit (1 s for the catalog pages, 2 s for labeling) and
the ratio p95 / limit (at most 1 passes).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from _common import cli, server

from tether.sdk import Client

IMAGES = 240
EMAIL = "bench-admin@example.com"
CHROMIUM = "/usr/bin/chromium"
EDITOR_SHOWS_IMAGE = (
    "() => [...document.querySelectorAll('#editor img')]"
    ".some(i => i.complete && i.naturalWidth > 0 && i.clientWidth > 100)"
)


def make_images(folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(IMAGES):
        out = io.BytesIO()
        Image.new("RGB", (160, 120), (i % 256, (7 * i) % 256, 120)).save(out, "PNG")
        (folder / f"img-{i:03d}.png").write_bytes(out.getvalue())


def rows(n: int) -> Any:
    splits = ("train", "valid", "test")
    for i in range(n):
        yield {
            "row_data": f"/data/local-files/?d=shots/img-{i % IMAGES:03d}.png",
            "global_key": f"row-{i:07d}",
            "metadata_fields": [{"name": "split", "value": splits[i % 3]}],
        }


def timed(tries: int, once: Callable[[], float]) -> list[float]:
    once()  # warm the server (and its caches) once; not counted
    return [once() for _ in range(tries)]


def report(name: str, seconds: list[float], limit: float) -> bool:
    p50 = statistics.median(seconds)
    p95 = statistics.quantiles(seconds, n=20)[-1] if len(seconds) >= 2 else seconds[0]
    ok = p95 <= limit
    print(
        f"{name:<28} p50 {p50 * 1000:7.0f} ms  p95 {p95 * 1000:7.0f} ms"
        f"  limit {limit * 1000:5.0f} ms  ratio {p95 / limit:5.2f}  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="tether-bench-ui-"))
    media = work / "media"
    make_images(media / "shots")
    config = {
        "TETHER_DATA_DIR": str(work / "data"),
        "TETHER_LOCAL_FILES_SERVING_ENABLED": "true",
        "TETHER_LOCAL_FILES_DOCUMENT_ROOT": str(media),
        "TETHER_PROBE_AFTER_WRITES": "false",  # a million probes would hold the worker
    }
    with server(work, config) as (_proc, url):
        # An admin (it connects the storage), once the server has made its database.
        cli(config, "users", "create", EMAIL, "--org", "bench", "--admin", "--password-stdin",
            stdin="pw\n")  # fmt: skip
        key = cli(config, "keys", "create", EMAIL).strip()
        client = Client(url, api_key=key, timeout=600)
        dataset = client.create_dataset("big")
        dataset.add_source_storage("local", path=str(media))
        started = time.perf_counter()
        job = dataset.create_data_rows(rows(args.rows))
        job.wait_till_done(timeout=3600)
        print(f"imported {args.rows:,} rows in {time.perf_counter() - started:.0f} s")
        project = client.create_project("bench", template="image-boxes")
        ids = [r.id for _, r in zip(range(args.tasks), dataset.data_rows(), strict=False)]
        project.add_data_rows(data_row_ids=ids)
        catalog = f"{url}/datasets/{dataset.id}"
        results = []
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            cookies = signed_in_cookies(browser, url)

            def fresh() -> Any:
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_cookies(cookies)
                return context

            def grid(path: str, click_next: bool = False) -> Callable[[], float]:
                def once() -> float:
                    context = fresh()
                    page = context.new_page()
                    if click_next:
                        page.goto(path)
                        loaded(page)
                        start = time.perf_counter()
                        page.get_by_role("link", name="Next page").click()
                    else:
                        start = time.perf_counter()
                        page.goto(path)
                    loaded(page)
                    took = time.perf_counter() - start
                    context.close()
                    return took

                return once

            def labeling() -> float:
                context = fresh()
                page = context.new_page()
                start = time.perf_counter()
                page.goto(f"{url}/projects/{project.id}/label")
                page.wait_for_function(EDITOR_SHOWS_IMAGE, timeout=30_000)
                took = time.perf_counter() - start
                context.close()
                return took

            results.append(report("catalog first page", timed(args.tries, grid(catalog)), 1.0))
            results.append(
                report("catalog next page", timed(args.tries, grid(catalog, click_next=True)), 1.0)
            )
            filtered = f"{catalog}?metadata=split:eq:valid"
            results.append(report("catalog filtered page", timed(args.tries, grid(filtered)), 1.0))
            results.append(report("labeling page to editor", timed(args.tries, labeling), 2.0))
            browser.close()
    sys.exit(0 if all(results) else 1)


def loaded(page: Any) -> None:
    if "/sign-in" in page.url:
        raise SystemExit(f"not signed in: {page.url}")
    page.wait_for_function(
        # The thumbnails in view (the rest load lazily, as the user scrolls).
        """() => { const imgs = [...document.querySelectorAll('ul.grid img')]
                     .filter(i => i.getBoundingClientRect().top < window.innerHeight);
            return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        timeout=30_000,
    )


def signed_in_cookies(browser: Any, url: str) -> list[dict[str, Any]]:
    context = browser.new_context()
    page = context.new_page()
    response = page.request.post(
        f"{url}/api/v1/session",
        data=orjson.dumps({"email": EMAIL, "password": "pw"}).decode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.ok, response.text()
    cookies: list[dict[str, Any]] = context.cookies()
    context.close()
    return cookies


if __name__ == "__main__":
    main()
