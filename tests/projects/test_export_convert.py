"""COCO, YOLO and Pascal VOC exports made by Label Studio's converter from a rectangle (and a
polygon) drawn in tether: pixel coordinates from the region's percentages and
``original_width``/``original_height``, the right category, and never a fetched image."""

from __future__ import annotations

import io
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson
import pytest
from PIL import Image
from sqlalchemy import Engine

from tests.conftest import Tenant
from tests.projects.conftest import new_project
from tests.projects.test_export import box, image_rows, rows
from tether.projects import labels

POLYGONS = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="poly" toName="image">
    <Label value="Road"/><Label value="Tree"/>
  </PolygonLabels>
</View>"""
CHOICES = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="good"/><Choice value="bad"/></Choices>
</View>"""
W, H = 1920, 1080


def annotate(
    engine: Engine, tenant: Tenant, project: dict[str, Any], by_row: dict[int, list[Any]]
) -> None:
    base = {"org_id": tenant.org_id, "project_id": project["id"], "completed_by": tenant.user_id}
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, project["id"], list(by_row))
        labels.insert_annotations(
            conn,
            [
                {**base, "data_row_id": i, "result": result}
                for i, result in by_row.items()
                if result is not None
            ],
        )


def sized(region: dict[str, Any], w: int = W, h: int = H) -> dict[str, Any]:
    return {**region, "original_width": w, "original_height": h}


def get(tenant: Tenant, project: dict[str, Any], fmt: str, **params: Any) -> Any:
    r = tenant.get(f"/projects/{project['id']}/export", params={"format": fmt, **params})
    assert r.status_code == 200, r.text
    return r


def unzip(r: Any) -> dict[str, bytes]:
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        return {name: z.read(name) for name in z.namelist()}


@pytest.fixture
def boxes(engine: Engine, tenant: Tenant) -> tuple[dict[str, Any], list[int]]:
    """Two labeled images (a Dog box on the first, a Cat and a Dog on the second), one
    skipped, one not labeled yet."""
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = image_rows(tenant, 4)
    annotate(
        engine,
        tenant,
        project,
        {
            ids[0]: [sized(box("Dog", x=12.5, y=20, width=25, height=40))],
            ids[1]: [
                sized(box("Cat", x=0, y=0, width=50, height=50), 640, 480),
                sized(box("Dog", x=50, y=50, width=10, height=20), 640, 480),
            ],
            ids[2]: None,
            ids[3]: None,
        },
    )
    with engine.begin() as conn:
        labels.insert_annotations(
            conn,
            [
                {
                    "org_id": tenant.org_id,
                    "project_id": project["id"],
                    "data_row_id": ids[2],
                    "result": [],
                    "was_cancelled": True,
                }
            ],
        )
    return project, ids


def test_a_rectangle_in_coco_has_pixel_coordinates_and_its_category(
    tenant: Tenant, boxes: Any
) -> None:
    project, _ids = boxes
    r = get(tenant, project, "coco")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-tether-export-tasks"] == "2"  # labeled tasks only, unless told
    assert r.headers["content-disposition"].endswith('-coco.json"')
    coco = r.json()
    categories = {c["name"]: c["id"] for c in coco["categories"]}
    assert set(categories) == {"Cat", "Dog"}
    images = {i["file_name"]: i for i in coco["images"]}
    assert set(images) == {"images/0.jpg", "images/1.jpg"}
    assert (images["images/0.jpg"]["width"], images["images/0.jpg"]["height"]) == (W, H)
    assert (images["images/1.jpg"]["width"], images["images/1.jpg"]["height"]) == (640, 480)
    by_image: dict[int, list[Any]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    (dog,) = by_image[images["images/0.jpg"]["id"]]
    assert dog["category_id"] == categories["Dog"]
    assert dog["bbox"] == pytest.approx([0.125 * W, 0.20 * H, 0.25 * W, 0.40 * H])
    assert dog["area"] == pytest.approx(0.25 * W * 0.40 * H)
    second = sorted(by_image[images["images/1.jpg"]["id"]], key=lambda a: a["bbox"][0])
    assert [a["category_id"] for a in second] == [categories["Cat"], categories["Dog"]]
    assert second[0]["bbox"] == pytest.approx([0, 0, 320, 240])
    assert second[1]["bbox"] == pytest.approx([320, 240, 64, 96])


def test_a_rectangle_in_yolo_is_its_normalized_center_and_size(tenant: Tenant, boxes: Any) -> None:
    project, _ids = boxes
    files = unzip(get(tenant, project, "yolo"))
    assert set(files) == {"classes.txt", "notes.json", "labels/0.txt", "labels/1.txt"}
    classes = files["classes.txt"].decode().split()
    (line,) = files["labels/0.txt"].decode().splitlines()
    cls, *numbers = line.split()
    assert classes[int(cls)] == "Dog"
    # center (12.5 + 25/2, 20 + 40/2) % and size (25, 40) % as fractions
    assert [float(n) for n in numbers] == pytest.approx([0.25, 0.40, 0.25, 0.40])
    second = sorted(line.split() for line in files["labels/1.txt"].decode().splitlines())
    assert [classes[int(c)] for c, *_ in second] == ["Cat", "Dog"]
    assert [float(n) for n in second[0][1:]] == pytest.approx([0.25, 0.25, 0.5, 0.5])
    assert [float(n) for n in second[1][1:]] == pytest.approx([0.55, 0.60, 0.10, 0.20])


def test_a_rectangle_in_voc_is_its_pixel_corners(tenant: Tenant, boxes: Any) -> None:
    project, _ids = boxes
    files = unzip(get(tenant, project, "voc"))
    assert set(files) == {"Annotations/0.xml", "Annotations/1.xml"}
    doc = ElementTree.fromstring(files["Annotations/0.xml"])
    assert doc.findtext("filename") == "0.jpg"
    assert (doc.findtext("size/width"), doc.findtext("size/height")) == (str(W), str(H))
    (obj,) = doc.findall("object")
    assert obj.findtext("name") == "Dog"
    corners = [int(obj.findtext(f"bndbox/{k}") or -1) for k in ("xmin", "ymin", "xmax", "ymax")]
    assert corners == [240, 216, 240 + 480, 216 + 432]  # x, y, x + w, y + h in pixels
    second = ElementTree.fromstring(files["Annotations/1.xml"]).findall("object")
    assert sorted(o.findtext("name") or "" for o in second) == ["Cat", "Dog"]


def test_status_widens_a_converted_export(tenant: Tenant, boxes: Any) -> None:
    project, _ids = boxes
    r = get(tenant, project, "yolo", status=["labeled", "unlabeled"])
    assert r.headers["x-tether-export-tasks"] == "3"
    files = unzip(r)
    assert files["labels/3.txt"] == b""  # not labeled: no regions


def test_a_polygon_in_coco_is_its_segmentation_in_pixels(engine: Engine, tenant: Tenant) -> None:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}", POLYGONS)
    (row,) = image_rows(tenant, 1)
    polygon = {
        "id": "p1",
        "from_name": "poly",
        "to_name": "image",
        "type": "polygonlabels",
        "original_width": 200,
        "original_height": 100,
        "image_rotation": 0,
        "value": {"points": [[10, 10], [50, 10], [50, 60]], "polygonlabels": ["Tree"]},
    }
    annotate(engine, tenant, project, {row: [polygon]})
    coco = get(tenant, project, "coco").json()
    (image,) = coco["images"]
    assert (image["width"], image["height"]) == (200, 100)
    (a,) = coco["annotations"]
    assert a["category_id"] == {c["name"]: c["id"] for c in coco["categories"]}["Tree"]
    assert a["segmentation"] == [pytest.approx([20, 10, 100, 10, 100, 60])]
    assert a["bbox"] == pytest.approx([20, 10, 80, 50])
    assert a["area"] == pytest.approx(0.5 * 80 * 50)


class _Counting(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        image = io.BytesIO()
        Image.new("RGB", (7, 5)).save(image, "PNG")
        self.send_response(200)
        self.end_headers()
        self.wfile.write(image.getvalue())

    def log_message(self, *_a: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback that serves a 7x5 image and notes every request."""
    _Counting.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Counting.hits
    finally:
        server.shutdown()
        server.server_close()


def test_the_converter_never_fetches_or_opens_an_image(
    engine: Engine, tenant: Tenant, image_server: Any, tmp_path: Path
) -> None:
    """Sizes come from the results: not from an image at a URL (never fetched), nor from a
    file of the server named by a row (never opened)."""
    base, hits = image_server
    local = tmp_path / "local.png"
    Image.new("RGB", (7, 5)).save(local)
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = rows(
        tenant,
        [f'{{"row_data": "{base}/img/web.png"}}', orjson.dumps({"row_data": str(local)}).decode()],
    )
    annotate(engine, tenant, project, {i: [sized(box("Cat"))] for i in ids})
    for fmt in ("coco", "yolo", "voc"):
        get(tenant, project, fmt)
    assert hits == []
    coco = get(tenant, project, "coco").json()
    assert {i["file_name"]: (i["width"], i["height"]) for i in coco["images"]} == {
        "images/web.png": (W, H),
        "images/local.png": (W, H),
    }
    # the probe of the test itself: the server does answer
    import httpx

    assert httpx.get(f"{base}/x").status_code == 200 and hits == ["/x"]


def test_tasks_whose_data_lack_the_image_are_left_out_and_counted(
    engine: Engine, tenant: Tenant
) -> None:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = rows(
        tenant, ['{"row_data": {"picture": "s3://b/y.jpg"}}', '{"row_data": "s3://b/z.jpg"}']
    )
    annotate(engine, tenant, project, {i: [sized(box())] for i in ids})
    r = get(tenant, project, "coco")
    assert (r.headers["x-tether-export-tasks"], r.headers["x-tether-export-skipped"]) == ("2", "1")
    assert [i["file_name"] for i in r.json()["images"]] == ["images/z.jpg"]


def test_a_config_without_boxes_or_polygons_cannot_be_converted(tenant: Tenant) -> None:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}", CHOICES)
    for fmt in ("coco", "yolo", "voc"):
        r = tenant.get(f"/projects/{project['id']}/export", params={"format": fmt})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "format_unsupported"
    assert tenant.get(f"/projects/{project['id']}/export").status_code == 200


def test_without_the_converter_the_answer_says_what_to_install(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    monkeypatch.setitem(sys.modules, "label_studio_converter.converter", None)  # not installed
    r = tenant.get(f"/projects/{project['id']}/export", params={"format": "coco"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "converter_not_installed"
    assert "pip install 'tether[convert]'" in error["message"]


def test_a_region_the_converter_cannot_read_is_a_clear_error(
    engine: Engine, tenant: Tenant
) -> None:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}", POLYGONS)
    (row,) = image_rows(tenant, 1)
    pointless = {
        "id": "p1",
        "from_name": "poly",
        "to_name": "image",
        "type": "polygonlabels",
        "original_width": 200,
        "original_height": 100,
        "value": {"polygonlabels": ["Tree"]},
    }
    annotate(engine, tenant, project, {row: [pointless]})
    r = tenant.get(f"/projects/{project['id']}/export", params={"format": "coco"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "conversion_failed"
    assert "points" in r.json()["error"]["message"]
