"""The web UI in a real browser: Playwright driving Debian's Chromium (headless) against a
real ``tether serve``, with every request to an address outside loopback blocked — the pages
must need nothing from the internet. Screenshots of each page go to
``test-artifacts/screenshots/``.

Covered: sign in; create a dataset; import a manifest and see its errors; connect a
local-files storage and an S3 storage (moto), check, sync, and see the thumbnails load
(natural width > 0); a failed connection check shows its message; open a data row and
toggle and fade an overlay layer; create a project with a live preview; upload media files;
API keys, members and the schema; and labeling in Label Studio's editor — a box drawn and
submitted and a task skipped (the annotations reach a local-files target), a prediction
reviewed with the row's attachments and overlay beside it and the keyboard shortcuts, a
text file's text, an audio segment, and a video of a bucket streamed through the proxy.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson
import pytest
from playwright.sync_api import expect

from tests.storages.servers import MotoS3, moto_s3  # noqa: F401 - the fixture
from tests.test_e2e import Server, running_server
from tether import Client

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
expect.set_options(timeout=60_000)  # assertions wait for the page (2 cores, a suite beside)


def _png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    folder = root / "shots"
    folder.mkdir()
    for i in range(4):
        (folder / f"shot-{i}.png").write_bytes(_png((40 * i, 120, 200)))
    (root / "masks").mkdir()
    (root / "masks" / "mask-0.png").write_bytes(_png((255, 0, 0)))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("web"),
        TETHER_LOCAL_FILES_SERVING_ENABLED="true",
        TETHER_LOCAL_FILES_DOCUMENT_ROOT=str(media),
        TETHER_OUTBOUND_ALLOWLIST="127.0.0.1",
    ) as srv:
        srv.email, srv.key = srv.new_account()
        yield srv


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("CHROMIUM IS NOT INSTALLED: run scripts/bootstrap.sh (as root it installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, server: Server) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, base_url=server.url)
    context.set_default_timeout(60_000)  # the suite runs beside the browser on 2 cores
    outside: list[str] = []
    problems: list[str] = []

    def only_loopback(route: Any) -> None:
        host = urlparse(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    tab = context.new_page()
    tab.on("pageerror", lambda exc: problems.append(str(exc)))
    yield tab
    context.close()
    assert outside == [], f"the pages asked for addresses outside loopback: {outside}"
    assert problems == [], f"script errors on the pages: {problems}"


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, server: Server) -> None:
    page.goto("/datasets")
    assert "/sign-in" in page.url
    page.get_by_label("Email").fill(server.email)
    page.get_by_label("Password").fill("pw")
    shot(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/datasets")


def saved(page: Any, storages: int) -> None:
    """Press "Check and save" and wait for the page to list ``storages`` storages."""
    page.get_by_role("button", name="Check and save").click()
    page.wait_for_function(
        f"""() => document.querySelectorAll('article.storage').length === {storages}
            || !document.querySelector('[data-storage-form] [role=alert]').hidden"""
    )
    alert = page.locator("[data-storage-form] [role=alert]")
    assert page.locator("article.storage").count() == storages, alert.inner_text()


def thumbnails_loaded(page: Any, count: int) -> None:
    page.wait_for_function(
        f"""() => {{
            const imgs = [...document.querySelectorAll('ul.grid img')];
            return imgs.length === {count} && imgs.every(i => i.complete && i.naturalWidth > 0);
        }}""",
        timeout=60_000,
    )


def test_sign_in_create_import_and_see_the_errors(
    page: Any, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    page.get_by_label("New dataset").fill("imported")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/datasets/*")
    expect(page.get_by_text("No data rows yet")).to_be_visible()
    shot(page, "catalog-empty")
    manifest = tmp_path / "rows.ndjson"
    manifest.write_text(
        '{"row_data": "https://example.com/a.jpg", "global_key": "a"}\n'
        '{"row_data": "https://example.com/b.jpg", "global_key": "b", '
        '"metadata_fields": [{"name": "nosuchfield", "value": 1}]}\n'
        '{"row_data": "https://example.com/c.jpg", "global_key": "c"}\n',
        encoding="utf-8",
    )
    page.get_by_role("navigation", name="Dataset").get_by_role("link", name="Import").click()
    page.get_by_label("Files").set_input_files(str(manifest))
    page.get_by_role("button", name="Import").click()
    page.wait_for_selector("[data-job-errors]:not([hidden])", timeout=60_000)
    assert "completed_with_errors" in page.locator("[data-job-status]").inner_text()
    assert "created 2" in page.locator("[data-job-counts]").inner_text()
    errors = page.locator("[data-job-errors] tbody tr")
    assert errors.count() == 1 and "nosuchfield" in errors.first.inner_text()
    href = page.locator("[data-download-errors]").get_attribute("href")
    assert href and href.startswith("blob:")
    shot(page, "import-errors")
    # Into a new dataset, made on the way.
    page.reload()
    page.get_by_label("or into a new dataset named").fill("made while importing")
    again = tmp_path / "more.csv"
    again.write_text("row_data,global_key\r\na first note,d\r\na second note,e\r\n")
    page.get_by_label("Files").set_input_files(str(again))
    page.get_by_role("button", name="Import").click()
    page.locator("[data-job-status]").filter(has_text="completed").wait_for(timeout=60_000)
    assert "created 2" in page.locator("[data-job-counts]").inner_text()
    page.locator("[data-catalog-link]").click()
    page.wait_for_url("**/datasets/*")
    expect(page.get_by_role("heading", name="made while importing")).to_be_visible()
    assert page.locator("table.list tbody tr, ul.grid li").count() == 2


def test_connect_check_sync_and_see_thumbnails(
    page: Any,
    server: Server,
    media: Path,
    moto_s3: MotoS3,  # noqa: F811
) -> None:
    sign_in(page, server)
    page.get_by_label("New dataset").fill("shots")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/datasets/*")
    catalog_url = page.url
    page.get_by_role("navigation", name="Dataset").get_by_role("link", name="Storages").click()
    expect(page.get_by_text("No storage yet")).to_be_visible()
    # Local files.
    page.get_by_label("Type").select_option("local")
    page.locator("#local-path").fill(str(media / "shots"))
    page.get_by_label("title").fill("local shots")
    saved(page, 1)
    # A failed check explains itself and saves nothing.
    page.get_by_label("Type").select_option("s3")
    page.locator("#s3-bucket").fill("no-such-bucket")
    page.locator("#s3-endpoint_url").fill(moto_s3.url)
    page.locator("#s3-access_key_id").fill(moto_s3.access_key_id)
    page.locator("#s3-secret_access_key").fill(moto_s3.secret_access_key)
    page.get_by_label("title").fill("s3 shots")
    page.get_by_role("button", name="Check and save").click()
    alert = page.locator("[data-storage-form] [role=alert]")
    alert.wait_for(state="visible")
    assert "bucket" in alert.inner_text().lower()
    shot(page, "storage-check-failed")
    # S3 (moto), with signed URLs.
    bucket = moto_s3.new_bucket()
    s3 = moto_s3.client()
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"img/s3-{i}.png", Body=_png((200, 40 * i, 60)))
    page.locator("#s3-bucket").fill(bucket)
    saved(page, 2)
    for article in page.locator("article.storage").all():
        article.get_by_role("button", name="Check connection").click()
        article.locator(".result.ok").wait_for()
        article.get_by_role("button", name="Sync").click()
        article.locator("[data-job-status]").filter(has_text="completed").wait_for(timeout=60_000)
    shot(page, "storages")
    page.goto(catalog_url)
    thumbnails_loaded(page, 7)
    shot(page, "catalog-grid")


def test_a_data_row_with_an_overlay_layer(page: Any, server: Server, media: Path) -> None:
    client = server.client()
    ds = client.create_dataset("overlays")
    ds.add_source_storage("local", path=str(media))
    job = ds.create_data_rows(
        [
            {
                "row_data": "/data/local-files/?d=shots/shot-0.png",
                "global_key": "with-mask",
                "attachments": [
                    {
                        "type": "IMAGE_OVERLAY",
                        "value": "/data/local-files/?d=masks/mask-0.png",
                        "name": "mask",
                    }
                ],
            }
        ]
    )
    job.wait_till_done(timeout=30)
    row = next(iter(ds.data_rows()))
    sign_in(page, server)
    page.goto(f"/data-rows/{row.id}")
    page.wait_for_function(
        "[...document.querySelectorAll('.stack img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    overlay = page.locator("[data-overlay='0']")
    expect(overlay).to_be_visible()
    page.get_by_label("Opacity of mask").fill("20")
    assert overlay.evaluate("e => e.style.opacity") == "0.2"
    page.get_by_label("mask", exact=True).uncheck()
    expect(overlay).to_be_hidden()
    shot(page, "data-row")


def test_create_a_project_from_a_template_with_a_live_preview(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.get_by_role("link", name="Projects").click()
    expect(page.get_by_text("No project yet")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("boxes")
    page.get_by_label("Start from a template").select_option("image-boxes")
    page.locator("[data-config-status].ok").wait_for()
    # The editor renders the config on a sample image.
    page.wait_for_function(EDITOR_SHOWS_IMAGE.replace("#editor", "#preview"), timeout=60_000)
    expect(page.locator("#preview").get_by_text("Person").first).to_be_visible()
    shot(page, "project-preview")
    config = page.get_by_label("Label config (Label Studio XML)")
    good = config.input_value()
    config.fill(good.replace('toName="image"', 'toName="img"'))
    status = page.locator("[data-config-status].error")
    status.wait_for()
    assert "line 3" in status.inner_text() and "'img' is no object tag" in status.inner_text()
    config.fill(good)
    page.locator("[data-config-status].ok").wait_for()
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/projects/*")
    expect(page.get_by_role("heading", name="boxes")).to_be_visible()


def test_media_files_upload_into_the_datasets_storage(
    page: Any, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    page.get_by_label("New dataset").fill("uploaded")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/datasets/*")
    catalog_url = page.url
    files = []
    for i in range(2):
        path = tmp_path / f"photo-{i}.png"
        path.write_bytes(_png((10, 200, 40 * i)))
        files.append(str(path))
    page.get_by_role("navigation", name="Dataset").get_by_role("link", name="Import").click()
    page.get_by_label("Files").set_input_files(files)
    page.get_by_role("button", name="Import").click()
    page.locator("[data-job-status]").filter(has_text="completed").wait_for(timeout=60_000)
    assert "created 2" in page.locator("[data-job-counts]").inner_text()
    page.goto(catalog_url)
    thumbnails_loaded(page, 2)
    assert page.locator("ul.grid .caption").all_inner_texts() == ["photo-0.png", "photo-1.png"]


def test_keys_members_and_schema(page: Any, server: Server) -> None:
    sign_in(page, server)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirms
    # An API key: shown once, then revoked.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("New key named").fill("laptop")
    page.get_by_role("button", name="Create").click()
    shown = page.get_by_label("New API key")
    shown.wait_for()
    key = shown.input_value()
    assert key and Client(server.url, api_key=key).datasets() is not None
    page.reload()
    assert key not in page.content()  # never shown again
    row = page.locator("tr", has_text="laptop")
    row.get_by_role("button", name="Revoke").click()
    page.locator("tr", has_text="laptop").filter(has_text="revoked").wait_for()
    # A member: invited, made admin, removed.
    page.get_by_role("link", name="Members").click()
    page.get_by_label("Invite").fill("newcomer@example.com")
    page.get_by_label("with password").fill("long enough pw")
    page.get_by_role("button", name="Invite").click()
    page.locator("tr", has_text="newcomer@example.com").wait_for()
    page.get_by_label("Role of newcomer@example.com").select_option("admin")
    page.wait_for_timeout(300)
    users = {u["email"]: u["role"] for u in server_users(server)}
    assert users["newcomer@example.com"] == "admin"
    page.locator("tr", has_text="newcomer@example.com").get_by_role("button", name="Remove").click()
    page.locator("tr", has_text="newcomer@example.com").wait_for(state="detached")
    # A metadata field: added, then removed.
    page.get_by_role("link", name="Metadata schema").click()
    page.get_by_label("New field").fill("weather")
    page.get_by_label("kind").select_option("enum")
    page.get_by_label("enum options (comma-separated)").fill("sunny, rain")
    page.get_by_role("button", name="Add").click()
    page.locator("tr", has_text="weather").filter(has_text="sunny, rain").wait_for()
    shot(page, "schema")
    page.locator("tr", has_text="weather").get_by_role("button", name="Remove").click()
    page.locator("tr", has_text="weather").wait_for(state="detached")


def server_users(server: Server) -> list[dict[str, Any]]:

    answer = httpx.get(
        f"{server.url}/api/v1/users", headers={"Authorization": f"Bearer {server.key}"}
    )
    return answer.json()["items"]  # type: ignore[no-any-return]


EDITOR_SHOWS_IMAGE = (
    "() => [...document.querySelectorAll('#editor img')]"
    ".some(i => i.complete && i.naturalWidth > 0 && i.clientWidth > 100)"
)


def draw_box(page: Any, label: str) -> None:
    """Pick ``label`` and drag a box on the editor's image."""
    page.locator("#editor").get_by_text(label, exact=True).first.click()
    area = page.locator("#editor canvas").first.bounding_box()
    x, y = area["x"] + 40, area["y"] + 40
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 80, steps=8)
    page.mouse.up()


def test_label_a_task_skip_one_and_see_the_annotations(
    page: Any, server: Server, media: Path
) -> None:
    client = server.client()
    ds = client.create_dataset("to label")
    storage = ds.add_source_storage("local", path=str(media / "shots"))
    storage.sync().wait_till_done(timeout=30)
    sign_in(page, server)
    # A project from a template, then the dataset's rows sent to it from the catalog.
    page.get_by_role("link", name="Projects").click()
    page.wait_for_url("**/projects")
    shot(page, "projects")
    page.get_by_label("Name", exact=True).fill("label me")
    page.get_by_label("Start from a template").select_option("image-boxes")
    page.locator("[data-config-status].ok").wait_for()
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/projects/*")
    project_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.goto(f"/datasets/{ds.id}")
    thumbnails_loaded(page, 4)
    for box in page.locator("[data-row]").all():
        box.check()
    page.get_by_label("Project").select_option(str(project_id))
    page.get_by_role("button", name="Send to project").click()
    page.wait_for_url("**/jobs/*")
    page.locator("[data-job-status]").filter(has_text="completed").wait_for(timeout=60_000)
    assert "added 4" in page.locator("[data-job-counts]").inner_text()
    # A local-files target storage for the annotations.
    out = media / f"out-{project_id}"
    out.mkdir()
    page.goto(f"/projects/{project_id}")
    page.get_by_role("navigation", name="Project").get_by_role(
        "link", name="Target storages"
    ).click()
    expect(page.get_by_text("No target storage yet")).to_be_visible()
    page.get_by_label("Type").select_option("local")
    page.locator("#local-path").fill(str(out))
    page.get_by_label("title").fill("annotations out")
    saved(page, 1)
    shot(page, "target-storages")
    # Label: draw a box and submit; the next task comes; skip it.
    page.goto(f"/projects/{project_id}/label")
    page.wait_for_function(EDITOR_SHOWS_IMAGE, timeout=60_000)
    first = page.locator("[data-task-status]").inner_text()
    draw_box(page, "Person")
    shot(page, "labeling")
    page.get_by_role("button", name="submit").first.click()
    page.locator("[data-task-status]").filter(has_text="Task").filter(
        has_not_text=first.split(" · ")[0]
    ).wait_for(timeout=60_000)
    page.wait_for_function(EDITOR_SHOWS_IMAGE, timeout=60_000)
    page.get_by_role("button", name="skip").first.click()
    project = client.get_project(project_id)
    deadline = time.monotonic() + 60  # the skip is saved by the page's own request
    while len(list(project.annotations())) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    project.refresh()
    made = list(project.annotations())
    assert len(made) == 2
    box, skip = made
    me = httpx.get(
        f"{server.url}/api/v1/session", headers={"Authorization": f"Bearer {server.key}"}
    )
    assert not box.was_cancelled and box.completed_by == me.json()["user"]["id"]
    (region,) = box.result
    assert region.type == "rectanglelabels" and region.value["rectanglelabels"] == ["Person"]
    assert region.original_width == 64 and region.original_height == 48
    assert 0 < region.value["width"] <= 100 and 0 < region.value["height"] <= 100
    assert box.lead_time is not None and box.lead_time > 0
    assert skip.was_cancelled and skip.result == []
    assert project.task_counts.labeled == 1 and project.task_counts.skipped == 1
    # Both went out to the target as they were saved (an export job each, run by the server's
    # worker shortly after), as Label Studio writes them.
    deadline = time.monotonic() + 60
    while not all((out / str(a.id)).exists() for a in made) and time.monotonic() < deadline:
        time.sleep(0.2)
    written = orjson.loads((out / str(box.id)).read_bytes())
    assert written["result"][0]["value"]["rectanglelabels"] == ["Person"]
    assert written["task"]["id"] == box.data_row_id
    assert orjson.loads((out / str(skip.id)).read_bytes())["was_cancelled"] is True
    # The project page lists the tasks by status.
    page.goto(f"/projects/{project_id}?status=labeled")
    rows = page.locator("[data-tasks] tbody tr")
    assert rows.count() == 1 and "labeled" in rows.first.inner_text()
    shot(page, "project")


# The overlay has loaded and lies on the editor's image, box for box (within a pixel).
LAYER_ON_IMAGE = """() => {
  const layer = document.querySelector('#editor [data-layer-over="0"]');
  const image = [...document.querySelectorAll('#editor img:not(.layer-over)')]
    .sort((a, b) => b.clientWidth * b.clientHeight - a.clientWidth * a.clientHeight)[0];
  if (!layer || !image || !layer.complete || layer.naturalWidth === 0) return false;
  const l = layer.getBoundingClientRect(), i = image.getBoundingClientRect();
  return i.width > 100 && ['left', 'top', 'width', 'height'].every(k => Math.abs(l[k] - i[k]) <= 1);
}"""


def test_label_with_predictions_attachments_and_the_keyboard(
    page: Any, server: Server, media: Path
) -> None:
    """The labeler starts from the model's prediction, sees the row's attachments beside the
    editor (an overlay toggled over the image), and submits and skips with the editor's
    keyboard shortcuts (Ctrl+Enter, Ctrl+Space)."""
    client = server.client()
    ds = client.create_dataset("to review")
    ds.add_source_storage("local", path=str(media))
    rows = [
        {
            "row_data": f"/data/local-files/?d=shots/shot-{i}.png",
            "global_key": f"review-{i}",
            "attachments": [
                {
                    "type": "IMAGE_OVERLAY",
                    "value": "/data/local-files/?d=masks/mask-0.png",
                    "name": "mask",
                },
                {"type": "TEXT", "value": f"note about shot {i}"},
            ],
        }
        for i in range(2)
    ]
    ds.create_data_rows(rows).wait_till_done(timeout=30)
    project = client.create_project("review me", template="image-boxes")
    project.add_data_rows(ds, timeout=30)
    predicted = {
        "id": "p1",
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 64,
        "original_height": 48,
        "value": {
            "x": 10.0,
            "y": 20.0,
            "width": 30.0,
            "height": 40.0,
            "rotation": 0,
            "rectanglelabels": ["Object"],
        },
    }
    job = project.upload_predictions(
        [
            {
                "global_key": f"review-{i}",
                "result": [predicted],
                "model_version": "m1",
                "score": 0.9,
            }
            for i in range(2)
        ],
        timeout=30,
    )
    assert job.counts["created"] == 2
    sign_in(page, server)
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_function(EDITOR_SHOWS_IMAGE, timeout=60_000)
    # The attachments panel: the text, and the overlay as a layer over the editor's image.
    panel = page.get_by_role("complementary", name="Attachments")
    expect(panel.get_by_text("note about shot")).to_be_visible()
    panel.get_by_label("Overlay: mask").check()
    page.wait_for_function(LAYER_ON_IMAGE, timeout=60_000)
    shot(page, "labeling-review")
    # Submitted untouched (below), the annotation holds the prediction's box.
    first = page.locator("[data-task-status]").inner_text()
    heading = page.get_by_role("heading", name="Label review me")
    heading.click()  # out of the overlay's checkbox: shortcuts are not for form fields
    page.keyboard.press("Control+Enter")
    page.locator("[data-task-status]").filter(has_text="Task").filter(
        has_not_text=first.split(" · ")[0]
    ).wait_for(timeout=60_000)
    page.wait_for_function(EDITOR_SHOWS_IMAGE, timeout=60_000)
    heading.click()
    page.keyboard.press("Control+Space")
    page.get_by_text("All done", exact=True).first.wait_for(timeout=60_000)
    made = sorted(project.annotations(), key=lambda a: a.id)
    assert len(made) == 2
    accepted, skipped = made
    (region,) = accepted.result
    assert region.value["rectanglelabels"] == ["Object"]
    box = [region.value[k] for k in ("x", "y", "width", "height")]
    assert box == pytest.approx([10, 20, 30, 40], abs=1e-6)  # the editor's float round trip
    assert not accepted.was_cancelled
    assert accepted.parent_prediction == project.predictions(accepted.data_row_id)[0].id
    assert skipped.was_cancelled and skipped.result == []


def test_label_a_text_file_of_a_storage(page: Any, server: Server, media: Path) -> None:
    """A text row that is a file in a storage shows the file's text in the editor (read
    through its resolved URL), and its choice is saved."""
    docs = media / "docs"
    docs.mkdir()
    (docs / "review.txt").write_text("Great product, fast delivery — ünïcode kept.", "utf-8")
    client = server.client()
    ds = client.create_dataset("texts")
    ds.add_source_storage("local", path=str(media))
    row = {"row_data": "/data/local-files/?d=docs/review.txt", "global_key": "review-txt"}
    ds.create_data_rows([row]).wait_till_done(timeout=30)
    assert next(iter(ds.data_rows())).media_type == "TEXT"
    project = client.create_project("sentiment", template="text-classification")
    project.add_data_rows(ds, timeout=30)
    sign_in(page, server)
    page.goto(f"/projects/{project.id}/label")
    editor = page.locator("#editor")
    expect(editor.get_by_text("Great product, fast delivery — ünïcode kept.").first).to_be_visible()
    expect(editor.get_by_text("/data/local-files/")).to_have_count(0)
    shot(page, "labeling-text")
    editor.get_by_text("Positive").first.click()
    page.get_by_role("button", name="submit").first.click()
    page.get_by_text("All done", exact=True).first.wait_for()
    (made,) = project.annotations()
    (region,) = made.result
    assert region.type == "choices" and region.value == {"choices": ["Positive"]}


def test_label_a_segment_of_audio(page: Any, server: Server, media: Path) -> None:
    """A WAV of a storage plays in the editor (streamed with Range by the local-files
    route) and a segment drawn on its waveform is saved with its times."""
    from tests.probe.media import wav

    (media / "audio").mkdir()
    (media / "audio" / "call.wav").write_bytes(wav(4.0, noise=True))
    client = server.client()
    ds = client.create_dataset("calls")
    ds.add_source_storage("local", path=str(media))
    row = {"row_data": "/data/local-files/?d=audio/call.wav", "global_key": "call"}
    ds.create_data_rows([row]).wait_till_done(timeout=30)
    project = client.create_project("segments", template="audio-segments")
    project.add_data_rows(ds, timeout=30)
    sign_in(page, server)
    page.goto(f"/projects/{project.id}/label")
    editor = page.locator("#editor")
    expect(editor.get_by_role("button", name="Play")).to_be_visible()  # decoded
    shot(page, "labeling-audio")
    editor.get_by_text("Speech", exact=True).first.click()
    area = editor.locator("canvas").first.bounding_box()
    y = area["y"] + area["height"] / 2
    page.mouse.move(area["x"] + area["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.5, y, steps=10)
    page.mouse.up()
    page.get_by_role("button", name="submit").first.click()
    page.get_by_text("All done", exact=True).first.wait_for()
    (made,) = project.annotations()
    (region,) = made.result
    assert region.type == "labels" and region.value["labels"] == ["Speech"]
    # A quarter to a half of the 4 s waveform (the canvas may carry a margin).
    assert 0.7 < region.value["start"] < 1.3 and 1.7 < region.value["end"] < 2.3, region.value


def _webm(seconds: float, fps: int = 25) -> bytes:
    """A VP8 WebM (Chromium plays it) made by PyAV's encoder."""
    import av
    from PIL import Image

    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 48), (i * 5 % 256, 80, 0)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


# The editor's video (which it keeps outside its own element, drawing frames on a canvas)
# has its data, lasts as long as the file, and comes through the proxy.
VIDEO_READY = """() => {
  const v = document.querySelector('video');
  return v && v.readyState >= 2 && Math.abs(v.duration - 2) < 0.2
    && v.currentSrc.includes('/proxy?');
}"""


def test_a_video_of_a_bucket_streams_into_the_editor_and_seeks(
    page: Any,
    server: Server,
    moto_s3: MotoS3,  # noqa: F811
) -> None:
    bucket = moto_s3.new_bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="clips/a.webm", Body=_webm(2.0))
    client = server.client()
    ds = client.create_dataset("clips")
    storage = ds.add_source_storage(
        "s3",
        bucket=bucket,
        endpoint_url=moto_s3.url,
        access_key_id=moto_s3.access_key_id,
        secret_access_key=moto_s3.secret_access_key,
        use_signed_urls=False,
    )
    storage.sync().wait_till_done(timeout=30)
    project = client.create_project("clips", template="video-frames")
    project.add_data_rows(ds, timeout=30)
    sign_in(page, server)
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_function(VIDEO_READY, timeout=60_000)
    # The browser reads media with Range requests, which the proxy answers; a seek lands.
    seeked = page.evaluate(
        """() => new Promise((done) => {
          const v = document.querySelector('video');
          v.addEventListener('seeked', () => done(v.currentTime), { once: true });
          v.currentTime = 1.5;
        })"""
    )
    assert abs(seeked - 1.5) < 0.1
    shot(page, "labeling-video")
    page.get_by_role("heading", name="Label clips").click()
    page.keyboard.press("Control+Space")
    page.get_by_text("All done", exact=True).first.wait_for()
    (skip,) = project.annotations()
    assert skip.was_cancelled


def test_rename_and_delete_a_dataset(page: Any, server: Server) -> None:
    client = server.client()
    ds = client.create_dataset("old name")
    ds.create_data_rows(
        [{"row_data": f"s3://b/{i}.jpg", "global_key": f"gone-{i}"} for i in range(3)]
    ).wait_till_done(timeout=30)
    sign_in(page, server)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="old name"))
    expect(row).to_contain_text("3")
    page.once("dialog", lambda dialog: dialog.accept("new name"))
    row.get_by_role("button", name="Rename").click()
    renamed = page.get_by_role("row").filter(has=page.get_by_role("link", name="new name"))
    expect(renamed).to_be_visible()
    assert client.get_dataset(ds.id).name == "new name"
    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    renamed.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("link", name="new name")).to_have_count(0)
    assert asked == ["Delete dataset new name and its 3 rows?"]
    assert ds.id not in [d.id for d in client.datasets()]
