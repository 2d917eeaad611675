"""The label config check: what it accepts, what it refuses (naming the line), and what it
reads out for tasks and annotations."""

from __future__ import annotations

import pytest

from tether.errors import Invalid
from tether.projects import label_config

REFUSED = [
    ("", None, "empty"),
    ("<View>\n  <Image name='i' value='$image'>\n</View>", 3, "not well-formed"),
    ("<View>\n<Image name='i' value='image'/>\n</View>", 2, "value must name a task data key"),
    ("<View>\n<Image value='$image'/>\n</View>", 2, "needs a name"),
    (
        "<View>\n<Image name='i' value='$a'/>\n<Text name='i' value='$b'/>\n</View>",
        3,
        "taken by another tag",
    ),
    (
        "<View>\n<Image name='img' value='$image'/>\n\n<Choices name='c' toName='image'/>\n</View>",
        4,
        "'image' is no object tag (object tags: img)",
    ),
    (
        "<View>\n<Image name='img' value='$image'/>\n<Choices name='c'/>\n</View>",
        3,
        "needs toName",
    ),
    ("<View><Header value='nothing to label'/></View>", None, "no object tag"),
    (
        '<!DOCTYPE v [<!ENTITY big "x">]><View><Image name="i" value="$i"/></View>',
        1,
        "DTD or entities",
    ),
    (
        "<View>\n<Image name='a' value='$a'/>\n<Labels name='l' toName='a,b'/>\n</View>",
        3,
        "'b' is no object tag",
    ),
]


@pytest.mark.parametrize(("xml", "line", "says"), REFUSED, ids=[r[2] for r in REFUSED])
def test_a_config_a_labeler_cannot_use_is_refused_naming_the_line(
    xml: str, line: int | None, says: str
) -> None:
    with pytest.raises(Invalid) as caught:
        label_config.parse(xml)
    error = caught.value
    assert error.code == "invalid_label_config"
    assert says in error.message
    assert error.details == {"field": "label_config", "line": line}
    if line:
        assert error.message.startswith(f"label_config: line {line}: ")


def test_every_template_parses_and_needs_its_media_key() -> None:
    expected = {
        "image-boxes": ("image", "rectanglelabels"),
        "image-polygons": ("image", "polygonlabels"),
        "image-classification": ("image", "choices"),
        "text-classification": ("text", "choices"),
        "text-spans": ("text", "labels"),
        "audio-segments": ("audio", "labels"),
        "video-frames": ("video", "videorectangle"),
    }
    assert label_config.template_names() == sorted(expected)
    for name, (key, region_type) in expected.items():
        config = label_config.parse(label_config.template(name))
        assert config.required_keys == (key,)
        assert any(region_type in c.types for c in config.controls.values()), name


def test_an_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(Invalid, match="templates: audio-segments, image-boxes"):
        label_config.template("nope")


def test_regions_must_name_the_configs_tags_and_types() -> None:
    config = label_config.parse(label_config.template("image-boxes"))
    box = {
        "id": "a",
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": ["Object"]},
    }
    config.check_regions([box])
    config.check_regions([{"type": "relation", "from_id": "a", "to_id": "b"}])
    wrong = [
        ({**box, "from_name": "labels"}, "from_name 'labels' is no control tag"),
        ({**box, "to_name": "img"}, "to_name 'img' is not what RectangleLabels 'label'"),
        ({**box, "type": "polygonlabels"}, "type 'polygonlabels' is not made by"),
        ({k: v for k, v in box.items() if k != "type"}, "needs a type"),
        ("box", "a region is a JSON object"),
    ]
    for region, says in wrong:
        with pytest.raises(Invalid) as caught:
            config.check_regions([box, region])
        assert caught.value.code == "region_mismatch"
        assert caught.value.message.startswith("result[1]: ")
        assert says in caught.value.message
    with pytest.raises(Invalid, match="result is a list"):
        config.check_regions({"regions": []})


def test_task_data_maps_a_plain_row_to_the_one_key_and_names_missing_keys() -> None:
    one = label_config.parse(label_config.template("image-boxes"))
    assert one.task_data("s3://b/1.jpg") == ({"image": "s3://b/1.jpg"}, [])
    assert one.task_data({"image": "s3://b/1.jpg", "x": 1}) == (
        {"image": "s3://b/1.jpg", "x": 1},
        [],
    )
    assert one.task_data({"img": "s3://b/1.jpg"})[1] == ["image"]
    two = label_config.parse(
        "<View><Image name='a' value='$left'/><Image name='b' value='$right'/>"
        "<Choices name='c' toName='a,b'><Choice value='same'/></Choices></View>"
    )
    assert two.required_keys == ("left", "right")
    assert two.task_data("s3://b/1.jpg") == (None, ["left", "right"])
    assert two.task_data({"left": "x"})[1] == ["right"]
