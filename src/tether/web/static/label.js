// The labeling page: the project's queue in Label Studio's editor. Submit, Update, Skip and
// the next task go through the JSON API (next-task leases a task to this annotator).
"use strict";

(() => {
  const setup = JSON.parse(document.getElementById("label-setup").textContent);
  const base = `/projects/${setup.project_id}`;
  const status = () => document.querySelector("[data-task-status]");
  let loadedAt = Date.now();
  let current = null;

  function taskData(resolvedData) {
    if (resolvedData && typeof resolvedData === "object") return { ...resolvedData };
    return { [setup.required_keys[0]]: resolvedData };
  }

  // The data keys of the config's Text and HyperText tags that take the text itself (no
  // valueType="url", with which the editor fetches a URL on its own).
  const INLINE_TEXT = (() => {
    const doc = new DOMParser().parseFromString(setup.label_config, "application/xml");
    const keys = new Set();
    for (const el of doc.getElementsByTagName("*")) {
      if (!["text", "hypertext"].includes(el.tagName.toLowerCase())) continue;
      if ((el.getAttribute("valueType") || "").toLowerCase() === "url") continue;
      const found = /^\$([\w.-]+)$/.exec((el.getAttribute("value") || "").trim());
      if (found) keys.add(found[1]);
    }
    return keys;
  })();

  // A row whose text is a file in a storage (a URI the row resolved to a URL) shows the
  // file's text, read through that URL, not the URL.
  async function withTexts(data, stored) {
    for (const key of INLINE_TEXT) {
      const url = data[key];
      if (typeof url !== "string" || url === stored[key]) continue;  // the text, or unresolved
      const answer = await fetch(url, { credentials: "same-origin" });
      if (!answer.ok) throw new Error(`Could not read the text of ${stored[key]}: ${answer.status} ${answer.statusText}`);
      data[key] = await answer.text();
    }
    return data;
  }

  function leadTime() {
    return Math.round((Date.now() - loadedAt) / 100) / 10;
  }

  function showAttachments(row) {
    const panel = document.querySelector("[data-attachments]");
    const list = panel.querySelector("[data-attachment-list]");
    const layers = panel.querySelector("[data-layers]");
    list.textContent = "";
    layers.textContent = "";
    const resolved = (row.resolved && row.resolved.attachments) || row.attachments;
    panel.hidden = !resolved.length;
    resolved.forEach((a, i) => {
      const name = a.name || a.type.toLowerCase();
      if (a.type === "IMAGE_OVERLAY") {
        const id = `layer-${i}`;
        const line = document.createElement("div");
        line.className = "check";
        line.innerHTML = `<input type="checkbox" id="${id}"><label for="${id}"></label>`;
        line.querySelector("label").textContent = `Overlay: ${name}`;
        line.querySelector("input").addEventListener("change", (e) => toggleOverlay(i, a.value, e.target.checked));
        layers.appendChild(line);
        return;
      }
      const box = document.createElement("details");
      box.open = !list.childElementCount;  // the first one open
      const summary = document.createElement("summary");
      summary.textContent = `${a.type}${a.name ? " · " + a.name : ""}`;
      box.appendChild(summary);
      let el;
      if (a.type === "IMAGE") { el = document.createElement("img"); el.src = a.value; el.alt = name; }
      else if (a.type === "VIDEO") { el = document.createElement("video"); el.src = a.value; el.controls = true; }
      else if (a.type === "HTML") {
        el = document.createElement("iframe");
        el.setAttribute("sandbox", "");
        el.title = name;
        if (/^(https?:|\/)/.test(a.value)) el.src = a.value; else el.srcdoc = a.value;
      } else if (/_URL$/.test(a.type)) {
        el = document.createElement("a"); el.href = a.value; el.target = "_blank"; el.rel = "noopener";
        el.textContent = `Open ${name}`;
      } else { el = document.createElement("pre"); el.className = "text"; el.textContent = a.value; }
      box.appendChild(el);
      list.appendChild(box);
    });
  }

  // An overlay layer over the editor's image: a clip the size of the image's frame, with
  // the layer kept on the image's box each frame (the editor zooms and pans the image).
  function toggleOverlay(index, url, on) {
    const existing = document.querySelector(`[data-layer-over="${index}"]`);
    if (existing) existing.parentElement.remove();
    if (!on) return;
    const editor = document.getElementById("editor");
    const clip = document.createElement("div");
    clip.className = "layer-clip";
    const layer = document.createElement("img");
    layer.src = url;
    layer.alt = "overlay";
    layer.className = "layer-over";
    layer.dataset.layerOver = String(index);
    clip.appendChild(layer);
    editor.appendChild(clip);
    const place = (el, box, within) => {
      el.style.left = `${box.left - within.left}px`;
      el.style.top = `${box.top - within.top}px`;
      el.style.width = `${box.width}px`;
      el.style.height = `${box.height}px`;
    };
    const follow = () => {
      if (!clip.isConnected) return;  // turned off, or the next task's editor replaced it
      const image = editorImage();
      if (image) {
        const frame = image.parentElement.getBoundingClientRect();
        place(clip, frame, editor.getBoundingClientRect());
        place(layer, image.getBoundingClientRect(), frame);
      }
      requestAnimationFrame(follow);
    };
    follow();
  }

  // The asset the editor shows: its largest image (the toolbar has small ones).
  function editorImage() {
    const images = [...document.querySelectorAll("#editor img:not(.layer-over)")];
    images.sort((a, b) => b.clientWidth * b.clientHeight - a.clientWidth * a.clientHeight);
    return images[0] || null;
  }

  // The editor finishes its own work after a callback returns: the next task comes after.
  function nextSoon() {
    return new Promise((resolve) => setTimeout(() => resolve(next()), 50));
  }

  async function predictionsOf(rowId) {
    try {
      const found = await api("GET", `${base}/tasks/${rowId}/predictions`);
      return found.items.map((p) => ({ id: p.id, result: p.result, model_version: p.model_version, score: p.score }));
    } catch (error) { return []; }
  }

  async function save(annotation, extra = {}) {
    const body = { result: annotation ? annotation.serializeAnnotation() : [], lead_time: leadTime(), ...extra };
    return api("POST", `${base}/tasks/${current.data_row_id}/annotations`, body);
  }

  async function next() {
    status().textContent = "Loading the next task…";
    let task;
    try {
      task = await api("GET", `${base}/next-task?resolve=true`);
    } catch (error) {
      if (error.status === 404) {
        document.querySelector(".labeling").hidden = true;
        document.querySelector("[data-all-done]").hidden = false;
        status().textContent = "All done.";
        return;
      }
      showError(document.querySelector("main"), error);
      return;
    }
    current = task;
    const row = task.data_row;
    const resolved = row.resolved ? row.resolved.row_data : row.row_data;
    const predictions = await predictionsOf(task.data_row_id);
    let data;
    try {
      data = await withTexts(taskData(resolved), taskData(row.row_data));
    } catch (error) {
      showError(document.querySelector("main"), error);
      return;
    }
    status().textContent = `Task ${task.data_row_id}${row.global_key ? " · " + row.global_key : ""}`;
    showAttachments(row);
    loadedAt = Date.now();
    window.tetherEditor.mountEditor("editor", {
      config: setup.label_config,
      interfaces: ["panel", "update", "submit", "skip", "controls", "topbar", "side-column",
        "annotations:menu", "annotations:add-new", "annotations:delete", "annotations:current",
        "predictions:menu"],
      user: { id: setup.user.id, firstName: setup.user.email, lastName: "" },
      task: { id: task.data_row_id, data, annotations: [], predictions },
      onStorageInitialized(LS) {  // after the editor took in the task's predictions
        // With a model's prediction the labeler starts from it, to review and correct.
        const store = LS.annotationStore;
        const a = store.predictions.length
          ? store.addAnnotationFromPrediction(store.predictions[0])
          : store.addAnnotation({ userGenerate: true });
        store.selectAnnotation(a.id);
      },
      async onSubmitAnnotation(LS, annotation) {
        try {
          const from = annotation.parent_prediction;
          const saved = await save(annotation, from ? { parent_prediction: from } : {});
          annotation.updatePersonalKey(String(saved.id));
          status().textContent = `Saved annotation ${saved.id}.`;
          await nextSoon();
        } catch (error) { showError(document.querySelector("main"), error); }
      },
      async onUpdateAnnotation(LS, annotation) {
        try {
          await api("PATCH", `/annotations/${annotation.pk}`, { result: annotation.serializeAnnotation(), lead_time: leadTime() });
          status().textContent = `Updated annotation ${annotation.pk}.`;
        } catch (error) { showError(document.querySelector("main"), error); }
      },
      async onSkipTask() {
        try {
          await save(null, { was_cancelled: true });
          await nextSoon();
        } catch (error) { showError(document.querySelector("main"), error); }
      },
      async onDeleteAnnotation(LS, annotation) {
        if (!annotation.pk || !/^\d+$/.test(String(annotation.pk))) return;
        try { await api("DELETE", `/annotations/${annotation.pk}`); }
        catch (error) { showError(document.querySelector("main"), error); }
      },
    });
  }

  document.addEventListener("DOMContentLoaded", next);
})();
