"""Every page renders for a signed-in user from what the services hold, sends a visitor
without a session to the sign-in page, and shows another organization's things as absent."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from tests.web.conftest import Browser, client_for, signed_in

PNG_ROWS = "".join(
    f'{{"row_data": "https://example.com/{i}.png", "global_key": "img-{i}", '
    f'"metadata_fields": [{{"name": "split", "value": "{("train", "valid")[i % 2]}"}}], '
    f'"attachments": [{{"type": "IMAGE_OVERLAY", "value": "https://example.com/m{i}.png", '
    f'"name": "mask"}}]}}\n'
    for i in range(5)
)


def _dataset(b: Browser, rows: str = PNG_ROWS) -> dict[str, Any]:
    r = b.api("POST", "/datasets", json={"name": f"web-{b.user_id}"})
    assert r.status_code == 201, r.text
    ds = r.json()
    job = b.api("POST", f"/datasets/{ds['id']}/data-rows", content=rows).json()
    assert b.api("GET", f"/jobs/{job['id']}").json()["status"] == "completed"
    return ds  # type: ignore[no-any-return]


PAGES = ["/datasets", "/jobs", "/settings/api-keys", "/settings/members", "/settings/schema"]


@pytest.mark.parametrize("path", PAGES)
def test_a_visitor_without_a_session_is_sent_to_sign_in_and_back(app: Any, path: str) -> None:
    r = client_for(app).get(path + "?x=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/sign-in?next=" + path.replace("/", "%2F") + "%3Fx%3D1"


def test_sign_in_page_keeps_only_a_path_of_this_site(app: Any) -> None:
    client = client_for(app)
    page = client.get("/sign-in?next=/datasets/3").text
    assert 'data-next="/datasets/3"' in page and 'type="password"' in page
    for outside in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        assert 'data-next="/datasets"' in client.get("/sign-in", params={"next": outside}).text


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_a_signed_in_user(browser: Browser, path: str) -> None:
    r = browser.page(path)
    assert r.status_code == 200, r.text
    assert browser.email in r.text and "<h1>" in r.text


def test_the_datasets_page_lists_rows_and_the_catalog_shows_them(browser: Browser) -> None:
    ds = _dataset(browser)
    page = browser.page("/datasets").text
    assert f'href="/datasets/{ds["id"]}"' in page and ">5<" in page
    catalog = browser.page(f"/datasets/{ds['id']}").text
    for i in range(5):
        assert f'src="https://example.com/{i}.png"' in catalog
        assert f'alt="img-{i}"' in catalog
    assert "data-facets" in catalog
    train = browser.page(f"/datasets/{ds['id']}?metadata=split:eq:train").text
    assert train.count('loading="lazy"') == 3
    listed = browser.page(f"/datasets/{ds['id']}?view=list&q=img-3").text
    assert "img-3" in listed and "img-2" not in listed
    bad = browser.page(f"/datasets/{ds['id']}?metadata=nosuchfield:eq:x")
    assert bad.status_code == 200 and 'role="alert"' in bad.text


def test_paging_walks_every_row_once(browser: Browser) -> None:
    rows = "".join(f'{{"row_data": "s3://b/{i}.jpg", "global_key": "p-{i}"}}\n' for i in range(130))
    ds = _dataset(browser, rows)
    seen: list[str] = []
    url = f"/datasets/{ds['id']}?view=list"
    while url:
        page = browser.page(url).text
        seen += [line.split(">")[1].split("<")[0] for line in page.split('href="/data-rows/')[1:]]
        marker = 'rel="next"'
        if marker not in page:
            break
        href = page.split(marker)[0].rsplit('href="', 1)[1].split('"')[0]
        url = f"/datasets/{ds['id']}" + href.replace("&amp;", "&")
    assert sorted(seen) == sorted(f"p-{i}" for i in range(130))


def test_a_data_row_page_shows_the_asset_overlays_and_facts(browser: Browser) -> None:
    ds = _dataset(browser)
    row = browser.api("GET", "/data-rows", params={"dataset_id": ds["id"], "limit": 1}).json()
    row_id = row["items"][0]["id"]
    page = browser.page(f"/data-rows/{row_id}").text
    assert 'src="https://example.com/0.png"' in page
    assert 'data-overlay="0"' in page and 'src="https://example.com/m0.png"' in page
    assert 'data-fade="0"' in page and "split" in page and "train" in page


def test_another_organizations_things_are_absent(
    engine: Engine, app: Any, browser: Browser
) -> None:
    ds = _dataset(browser)
    row = browser.api("GET", "/data-rows", params={"dataset_id": ds["id"], "limit": 1}).json()
    other = signed_in(engine, app)
    for path in (
        f"/datasets/{ds['id']}",
        f"/datasets/{ds['id']}/import",
        f"/datasets/{ds['id']}/storages",
        f"/data-rows/{row['items'][0]['id']}",
        "/jobs/nosuchjob",
    ):
        r = other.page(path)
        assert r.status_code == 404, path
        assert "Not found" in r.text and "<html" in r.text
    assert other.page("/datasets/not-a-number").status_code == 404


def test_import_and_storages_pages(browser: Browser) -> None:
    ds = _dataset(browser)
    page = browser.page(f"/datasets/{ds['id']}/import").text
    assert "data-import" in page and 'type="file"' in page
    page = browser.page(f"/datasets/{ds['id']}/storages").text
    assert "No storage yet" in page
    for t in ("s3", "gcs", "azure_blob", "redis", "local"):
        assert f'data-type-fields="{t}"' in page
    assert 'name="secret_access_key" type="password"' in page.replace("\n", " ").replace(
        'id="s3-secret_access_key" ', ""
    )
    assert "sts:ExternalId" in page


def test_a_member_sees_no_admin_controls(engine: Engine, app: Any, browser: Browser) -> None:
    from tether import accounts

    with engine.connect() as conn:
        org = accounts.get_org(conn, browser.org_id)["name"]
    member = signed_in(engine, app, role="member", org=org)
    ds = _dataset(browser)
    page = member.page("/datasets").text
    assert f'data-delete="/datasets/{ds["id"]}"' not in page
    assert "Admins connect storages" in member.page(f"/datasets/{ds['id']}/storages").text
    assert "data-role-of" not in member.page("/settings/members").text


def test_the_projects_pages_render_with_projects_and_tasks(browser: Browser) -> None:
    ds = _dataset(browser)
    made = browser.api("POST", "/projects", json={"name": "boxes", "template": "image-boxes"})
    project = made.json()
    rows = browser.api("GET", "/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    job = browser.api(
        "POST", f"/projects/{project['id']}/tasks", json={"data_row_ids": [r["id"] for r in rows]}
    ).json()
    assert browser.api("GET", f"/jobs/{job['id']}").json()["counts"]["added"] == 5
    listed = browser.page("/projects")
    assert listed.status_code == 200 and 'href="/projects/' in listed.text
    assert ">5<" in listed.text  # the task count
    page = browser.page(f"/projects/{project['id']}")
    assert page.status_code == 200 and page.text.count("unlabeled</td>") == 5
    labeled = browser.page(f"/projects/{project['id']}?status=labeled").text
    assert "No task matches these filters" in labeled


def test_the_tasks_table_filters_as_the_catalog_does(browser: Browser) -> None:
    ds = _dataset(browser)
    project = browser.api("POST", "/projects", json={"name": "f", "template": "image-boxes"}).json()
    rows = browser.api("GET", "/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    by_key = {r["global_key"]: r["id"] for r in rows}
    browser.api(
        "POST", f"/projects/{project['id']}/tasks", json={"data_row_ids": list(by_key.values())}
    )
    region = {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["Person"]},
    }
    made = browser.api(
        "POST",
        f"/projects/{project['id']}/tasks/{by_key['img-2']}/annotations",
        json={"result": [region]},
    )
    assert made.status_code == 201, made.text
    base = f"/projects/{project['id']}"

    def shown(query: str) -> set[str]:
        page = browser.page(f"{base}?{query}")
        assert page.status_code == 200
        return {k for k, i in by_key.items() if f'href="/data-rows/{i}"' in page.text}

    assert shown("") == set(by_key)
    assert shown("metadata=split:eq:train") == {"img-0", "img-2", "img-4"}
    assert shown("metadata=split:eq:train&status=unlabeled") == {"img-0", "img-4"}
    assert shown("status=labeled") == {"img-2"}
    assert shown("q=img-3") == {"img-3"}
    assert shown("media_type=IMAGE&q=img-") == set(by_key)
    assert shown("media_type=VIDEO") == set()
    # A filter that does not parse is said so, not a 500.
    bad = browser.page(f"{base}?metadata=nosuchfield:eq:x")
    assert bad.status_code == 200 and 'role="alert"' in bad.text
    assert browser.page(f"/projects/{project['id']}/label").status_code == 200
    assert "No target storage yet" in browser.page(f"/projects/{project['id']}/storages").text
    assert browser.api("GET", "/projects").json()["items"][0]["task_count"] == 5
