"""Label Studio's XML labeling config: checked on save, and read for what tasks and
annotations must hold.

A config has *object* tags (what is shown: ``<Image name="image" value="$image"/>``) and
*control* tags (what a labeler makes: ``<RectangleLabels name="label" toName="image">``).
``parse`` refuses a config a labeler could not use, naming the line:
- it is not well-formed XML (or declares a DTD or entities: never expanded);
- a tag's ``name`` is missing or taken twice;
- an object tag's ``value`` is not ``$key`` (the task data key it shows);
- a control tag's ``toName`` names no object tag.

What it gives back: the data keys every task needs (``required_keys``) and, for each
control, the object tags it labels and the region types it makes (``check_regions``).
Tags that are neither (``View``, ``Header``, ``Style`` ...) only lay the page out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from lxml import etree

from tether.errors import Invalid

MAX_CONFIG_BYTES = 256 * 1024

# Tags that show task data (Label Studio's object tags), by their lower-case name.
OBJECT_TAGS = frozenset(
    {
        "image",
        "text",
        "hypertext",
        "audio",
        "audioplus",
        "video",
        "timeseries",
        "paragraphs",
        "table",
        "list",
        "pdf",
        "markdown",
        "chat",
    }
)
# Control tags, by lower-case name: the region types (``type`` in a result) each makes.
# A tag makes its own name; the generic ones also make the typed results of the tools
# they are combined with (``<Labels>`` beside ``<Rectangle>`` on an image).
_LABELED = (
    "rectanglelabels",
    "polygonlabels",
    "keypointlabels",
    "ellipselabels",
    "brushlabels",
    "bitmasklabels",
    "hypertextlabels",
    "paragraphlabels",
    "timeserieslabels",
    "timelinelabels",
)
CONTROL_TYPES: dict[str, frozenset[str]] = {
    name: frozenset({name, *extra})
    for name, extra in {
        "labels": _LABELED,
        "rectangle": ("rectanglelabels",),
        "polygon": ("polygonlabels",),
        "keypoint": ("keypointlabels",),
        "ellipse": ("ellipselabels",),
        "brush": ("brushlabels",),
        "bitmask": ("bitmasklabels",),
        "magicwand": ("brushlabels",),
        "rectanglelabels": (),
        "polygonlabels": (),
        "keypointlabels": (),
        "ellipselabels": (),
        "brushlabels": (),
        "bitmasklabels": (),
        "hypertextlabels": (),
        "paragraphlabels": (),
        "timeserieslabels": (),
        "timelinelabels": (),
        "videorectangle": (),
        "choices": (),
        "textarea": (),
        "rating": (),
        "number": (),
        "datetime": (),
        "taxonomy": (),
        "pairwise": (),
        "ranker": (),
    }.items()
}
# Results that join two regions: no from_name/to_name of their own.
RELATION_TYPES = frozenset({"relation"})
_KEY = re.compile(r"^\$([A-Za-z_][\w.-]*)$")


@dataclass(frozen=True)
class ObjectTag:
    name: str
    tag: str  # as written: "Image"
    key: str  # the task data key its value names
    line: int


@dataclass(frozen=True)
class ControlTag:
    name: str
    tag: str
    to_names: tuple[str, ...]
    types: frozenset[str]
    line: int


@dataclass(frozen=True)
class LabelConfig:
    objects: dict[str, ObjectTag]
    controls: dict[str, ControlTag]
    required_keys: tuple[str, ...] = field(default=())

    def region_error(self, region: Any) -> str | None:
        """Why ``region`` (one item of a result) does not fit this config, or None."""
        if not isinstance(region, dict):
            return "a region is a JSON object"
        type_ = region.get("type")
        if not isinstance(type_, str) or not type_:
            return "a region needs a type"
        if type_ in RELATION_TYPES:
            return None
        from_name, to_name = region.get("from_name"), region.get("to_name")
        control = self.controls.get(from_name) if isinstance(from_name, str) else None
        if control is None:
            known = ", ".join(sorted(self.controls)) or "none"
            return f"from_name {from_name!r} is no control tag of the config (it has {known})"
        if to_name not in control.to_names:
            return (
                f"to_name {to_name!r} is not what {control.tag} {control.name!r} labels "
                f"({', '.join(control.to_names)})"
            )
        if type_ not in control.types:
            return (
                f"type {type_!r} is not made by {control.tag} {control.name!r} "
                f"(it makes {', '.join(sorted(control.types))})"
            )
        return None

    def check_regions(self, result: Any) -> None:
        """``Invalid`` naming the first region of ``result`` that does not fit."""
        if not isinstance(result, list):
            raise Invalid("result is a list of regions", {"field": "result"}, code="bad_result")
        for index, region in enumerate(result):
            reason = self.region_error(region)
            if reason is not None:
                raise Invalid(
                    f"result[{index}]: {reason}",
                    {"field": "result", "index": index},
                    code="region_mismatch",
                )

    def task_data(self, row_data: Any) -> tuple[dict[str, Any] | None, list[str]]:
        """A row's data as a task's ``data`` and the keys it lacks. A plain value (a URI,
        a text) is the one key of a config that needs one."""
        if isinstance(row_data, dict):
            return row_data, [k for k in self.required_keys if k not in row_data]
        if len(self.required_keys) == 1:
            return {self.required_keys[0]: row_data}, []
        return None, list(self.required_keys)


def parse(xml: str) -> LabelConfig:
    """The config ``xml`` checked; ``Invalid`` (code ``invalid_label_config``, ``details``
    with the line) naming the first thing wrong."""
    if not isinstance(xml, str) or not xml.strip():
        raise _bad("the label config is empty", None)
    data = xml.encode()
    if len(data) > MAX_CONFIG_BYTES:
        raise _bad(f"the label config is over {MAX_CONFIG_BYTES // 1024} KiB", None)
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise _bad(f"not well-formed XML: {exc.msg}", exc.lineno) from None
    if root.getroottree().docinfo.internalDTD is not None or _has_entities(root):
        raise _bad("a label config may not declare a DTD or entities", 1)
    objects: dict[str, ObjectTag] = {}
    pending: list[tuple[str, str, str, int]] = []
    for element in root.iter(tag=etree.Element):
        tag = etree.QName(element).localname
        low = tag.lower()
        line = element.sourceline or 0
        if low in OBJECT_TAGS:
            name = _name(element, tag, line, objects, pending)
            value = str(element.get("value") or "")
            match = _KEY.match(value.strip())
            if match is None:
                raise _bad(
                    f'<{tag} name="{name}">: value must name a task data key as "$key" '
                    f"(it is {value!r})",
                    line,
                )
            objects[name] = ObjectTag(name, tag, match.group(1), line)
        elif low in CONTROL_TYPES:
            name = _name(element, tag, line, objects, pending)
            pending.append((name, tag, str(element.get("toName") or ""), line))
    if not objects:
        raise _bad("the label config has no object tag (Image, Text, Audio, Video, ...)", None)
    controls: dict[str, ControlTag] = {}
    for name, tag, to_name, line in pending:
        targets = tuple(t.strip() for t in to_name.split(",") if t.strip())
        if not targets:
            raise _bad(f'<{tag} name="{name}"> needs toName (an object tag\'s name)', line)
        for target in targets:
            if target not in objects:
                raise _bad(
                    f'<{tag} name="{name}" toName="{to_name}">: {target!r} is no object tag '
                    f"(object tags: {', '.join(sorted(objects))})",
                    line,
                )
        controls[name] = ControlTag(name, tag, targets, CONTROL_TYPES[tag.lower()], line)
    keys = tuple(dict.fromkeys(o.key for o in objects.values()))
    return LabelConfig(objects, controls, keys)


def check(xml: str) -> dict[str, Any]:
    """``parse`` as an answer: ``ok``, or the ``message`` and ``line`` of what is wrong; the
    keys tasks need and the controls."""
    try:
        config = parse(xml)
    except Invalid as exc:
        return {"ok": False, "message": exc.message, "line": (exc.details or {}).get("line")}
    return {
        "ok": True,
        "required_keys": list(config.required_keys),
        "objects": [{"name": o.name, "tag": o.tag, "key": o.key} for o in config.objects.values()],
        "controls": [
            {"name": c.name, "tag": c.tag, "to_names": list(c.to_names), "types": sorted(c.types)}
            for c in config.controls.values()
        ],
    }


def _name(
    element: Any,
    tag: str,
    line: int,
    objects: dict[str, ObjectTag],
    pending: Iterable[tuple[str, str, str, int]],
) -> str:
    name = str(element.get("name") or "").strip()
    if not name:
        raise _bad(f"<{tag}> needs a name", line)
    if name in objects or any(p[0] == name for p in pending):
        raise _bad(f'<{tag} name="{name}">: the name {name!r} is taken by another tag', line)
    return name


def _has_entities(root: Any) -> bool:
    return any(isinstance(node, etree._Entity) for node in root.iter())


def _bad(message: str, line: int | None) -> Invalid:
    where = f"line {line}: " if line else ""
    return Invalid(
        f"label_config: {where}{message}",
        {"field": "label_config", "line": line},
        code="invalid_label_config",
    )


# Templates for the common tasks, as files in ``templates/`` (``--template NAME``).
def template_names() -> list[str]:
    folder = resources.files("tether.projects") / "templates"
    return sorted(p.name.removesuffix(".xml") for p in folder.iterdir() if p.name.endswith(".xml"))


def template(name: str) -> str:
    if name not in template_names():
        raise Invalid(
            f"no label config template {name!r}; templates: {', '.join(template_names())}",
            {"field": "template"},
            code="unknown_template",
        )
    return (resources.files("tether.projects") / "templates" / f"{name}.xml").read_text()
