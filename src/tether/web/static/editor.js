// Label Studio's editor (/static/editor/main.js, from the label-studio wheel the set-up
// unpacks), embedded: the config preview on the projects page and the labeling page.
"use strict";

const SAMPLE_TEXT = "tether labels data where it lives: a sample text to try the config on.";

// Data to preview a config with: a sample for each object tag's key.
function sampleData(objects) {
  const data = {};
  for (const o of objects) {
    const tag = o.tag.toLowerCase();
    if (tag === "image") data[o.key] = "/static/sample.svg";
    else if (["text", "hypertext", "paragraphs", "markdown"].includes(tag)) data[o.key] = SAMPLE_TEXT;
    else data[o.key] = "";
  }
  return data;
}

let mounted = 0;

// A fresh editor in the element of id `holder`: any earlier one there is destroyed, and the
// new one gets an element of its own (the editor does not mount twice on one element).
function mountEditor(holder, options) {
  const box = document.getElementById(holder);
  if (box._editor) { try { box._editor.destroy(); } catch (error) { /* already gone */ } }
  box.textContent = "";
  if (typeof window.LabelStudio !== "function") {
    box.textContent = "The annotation editor is not installed on this server (run scripts/bootstrap.sh).";
    return null;
  }
  const own = document.createElement("div");
  own.id = `${holder}-${++mounted}`;
  box.appendChild(own);
  box._editor = new window.LabelStudio(own.id, options);
  return box._editor;
}

function previewConfig(holder, config, objects) {
  return mountEditor(holder, {
    config,
    interfaces: ["panel", "controls", "side-column"],
    user: { id: 1, firstName: "", lastName: "" },
    task: { id: 1, data: sampleData(objects), annotations: [], predictions: [] },
    onLabelStudioLoad(LS) {
      const a = LS.annotationStore.addAnnotation({ userGenerate: true });
      LS.annotationStore.selectAnnotation(a.id);
    },
  });
}

window.tetherEditor = { mountEditor, previewConfig, sampleData };
