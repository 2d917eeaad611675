"""Projects through the API, the SDK and the CLI: create, list, show, change, delete."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Tenant
from tests.projects.conftest import BOXES, new_project
from tether import Client
from tether.sdk import ConflictError, InvalidError


def _name() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def test_create_show_list_change_delete(tenant: Tenant) -> None:
    name = _name()
    made = new_project(tenant, name)
    assert made["name"] == name and made["label_config"] == BOXES
    assert made["created_by"] == tenant.user_id
    assert made["task_count"] == 0
    assert made["task_counts"] == {"unlabeled": 0, "labeled": 0, "skipped": 0}
    assert tenant.get(f"/projects/{made['id']}").json() == made
    assert tenant.get(f"/projects/{name}").json() == made
    assert [p["name"] for p in tenant.get("/projects").json()["items"]] == [name]
    r = tenant.patch(f"/projects/{made['id']}", json={"description": "cats", "name": name + "x"})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "cats" and r.json()["name"] == name + "x"
    assert tenant.delete(f"/projects/{made['id']}").status_code == 204
    assert tenant.get(f"/projects/{made['id']}").status_code == 404


def test_a_name_is_unique_in_an_organization_only(tenant: Tenant, other_tenant: Tenant) -> None:
    name = _name()
    new_project(tenant, name)
    r = tenant.post("/projects", json={"name": f"  {name} ", "label_config": BOXES})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    new_project(other_tenant, name)
    assert tenant.get("/projects").json()["items"][0]["name"] == name


def test_a_bad_config_is_refused_with_its_line_and_nothing_is_saved(tenant: Tenant) -> None:
    xml = "<View>\n  <Image name='image' value='$image'/>\n  <Choices name='c' toName='img'/>\n"
    r = tenant.post("/projects", json={"name": _name(), "label_config": xml + "</View>"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_label_config" and error["details"]["line"] == 3
    assert "'img' is no object tag" in error["message"]
    assert tenant.get("/projects").json()["items"] == []
    made = new_project(tenant, _name())
    r = tenant.patch(f"/projects/{made['id']}", json={"label_config": "<View>"})
    assert r.status_code == 422 and r.json()["error"]["details"]["line"] == 1
    assert tenant.get(f"/projects/{made['id']}").json()["label_config"] == BOXES


def test_templates_are_listed_and_a_project_can_start_from_one(tenant: Tenant) -> None:
    items = tenant.get("/projects/templates").json()["items"]
    names = [t["name"] for t in items]
    assert "image-boxes" in names and "text-spans" in names
    r = tenant.post("/projects", json={"name": _name(), "template": "text-spans"})
    assert r.status_code == 201, r.text
    assert (
        r.json()["label_config"]
        == dict((t["name"], t["label_config"]) for t in items)["text-spans"]
    )
    for body in ({"name": _name()}, {"name": _name(), "template": "x", "label_config": BOXES}):
        assert tenant.post("/projects", json=body).status_code == 422
    r = tenant.post("/projects", json={"name": _name(), "template": "nope"})
    assert r.json()["error"]["code"] == "unknown_template"


def test_another_organizations_project_is_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    made = new_project(tenant, _name())
    for call in (
        other_tenant.get(f"/projects/{made['id']}"),
        other_tenant.get(f"/projects/{made['name']}"),
        other_tenant.patch(f"/projects/{made['id']}", json={"description": "x"}),
        other_tenant.delete(f"/projects/{made['id']}"),
    ):
        assert call.status_code == 404
    assert tenant.get(f"/projects/{made['id']}").json()["description"] == ""


def test_only_admins_delete_projects(tenant: Tenant, member: Tenant) -> None:
    made = new_project(member, _name())  # a member creates and changes projects
    assert member.patch(f"/projects/{made['id']}", json={"description": "x"}).status_code == 200
    r = member.delete(f"/projects/{made['id']}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert tenant.delete(f"/projects/{made['id']}").status_code == 204


def test_the_sdk(sdk: Client) -> None:
    p = sdk.create_project(_name(), BOXES, "first")
    assert p.label_config == BOXES and p.description == "first"
    assert [x.id for x in sdk.projects()] == [p.id]
    assert sdk.get_project(p.name).id == p.id == sdk.get_project(p.id).id
    p.update(description="second")
    assert sdk.get_project(p.id).description == "second"
    try:
        p.update(label_config="<View/>")
    except InvalidError as exc:
        assert exc.code == "invalid_label_config"
    else:
        raise AssertionError("an invalid config was accepted")
    try:
        sdk.create_project(p.name, BOXES)
    except ConflictError:
        pass
    else:
        raise AssertionError("a taken name was accepted")
    t = sdk.create_project(_name(), template="image-polygons")
    assert "PolygonLabels" in t.label_config
    assert "image-polygons" in sdk.label_config_templates()
    p.delete()
    assert [x.id for x in sdk.projects()] == [t.id]


def test_the_cli(cli: Any, tmp_path: Any) -> None:
    config = tmp_path / "boxes.xml"
    config.write_text("\ufeff" + BOXES, encoding="utf-8")  # a BOM, as editors on Windows save
    name = _name()
    r = cli("projects", "create", name, "--label-config", str(config))
    assert r.exit_code == 0, r.output
    assert f"created project {name}" in r.output
    r = cli("projects", "create", _name(), "--template", "text-classification")
    assert r.exit_code == 0, r.output
    r = cli("projects", "list")
    assert r.exit_code == 0 and name in r.output
    r = cli("projects", "show", name)
    assert r.exit_code == 0 and '"label_config"' in r.output and "RectangleLabels" in r.output
    r = cli("projects", "templates", "image-boxes")
    assert r.exit_code == 0 and "<RectangleLabels" in r.output
    bad = tmp_path / "bad.xml"
    bad.write_text("<View>\n<Image name='i' value='i'/></View>")
    r = cli("projects", "create", _name(), "--label-config", str(bad))
    assert r.exit_code == 1 and "line 2" in r.output
    r = cli("projects", "create", _name())
    assert r.exit_code == 1 and "--label-config FILE or --template NAME" in r.output
    r = cli("projects", "delete", name, "--yes")
    assert r.exit_code == 0, r.output
    assert cli("projects", "show", name).exit_code == 1


def test_a_config_is_checked_without_saving(tenant: Tenant) -> None:
    r = tenant.post("/projects/check-label-config", json={"label_config": BOXES})
    assert r.status_code == 200
    assert r.json() == {
        "ok": True,
        "message": None,
        "line": None,
        "required_keys": ["image"],
        "objects": [{"name": "image", "tag": "Image", "key": "image"}],
        "controls": [
            {
                "name": "label",
                "tag": "RectangleLabels",
                "to_names": ["image"],
                "types": ["rectanglelabels"],
            }
        ],
    }
    r = tenant.post("/projects/check-label-config", json={"label_config": "<View>\n<Image"})
    assert r.status_code == 200 and r.json()["ok"] is False and r.json()["line"] == 2
    assert r.json()["message"].startswith("label_config: line 2: not well-formed XML")
    assert tenant.get("/projects").json()["items"] == []
