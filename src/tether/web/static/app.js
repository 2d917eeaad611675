// tether's pages: small behaviours over server-rendered HTML. Every change goes through the
// JSON API (/api/v1) with the session cookie and its CSRF token, as the API's rules require.
"use strict";

const API = "/api/v1";
const FINISHED = ["completed", "completed_with_errors", "failed", "canceled"];
const MANIFEST = /\.(json|ndjson|jsonl|csv|tsv|txt)$/i;

function csrf() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("tether_csrf="));
  return found ? decodeURIComponent(found.slice("tether_csrf=".length)) : "";
}

async function api(method, path, body, options = {}) {
  const headers = { "X-CSRF-Token": csrf(), Accept: "application/json" };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (options.contentType) {
    headers["Content-Type"] = options.contentType;
  }
  const answer = await fetch(API + path, { method, headers, body: payload, credentials: "same-origin" });
  if (answer.status === 204) return null;
  const data = await answer.json().catch(() => null);
  if (!answer.ok) {
    const error = new Error((data && data.error && data.error.message) || `${answer.status} ${answer.statusText}`);
    error.details = data && data.error ? data.error.details : null;
    error.status = answer.status;
    throw error;
  }
  return data;
}

function showError(where, error) {
  const box = where && (where.querySelector('[role="alert"]') || document.querySelector("[data-page-error]"));
  if (!box) { window.alert(error.message); return; }
  box.hidden = false;
  box.textContent = error.message;
  const findings = error.details && Array.isArray(error.details.errors) ? error.details.errors : [];
  for (const f of findings) {
    const line = document.createElement("div");
    line.textContent = `${f.code}: ${f.message}`;
    box.appendChild(line);
  }
}

function clearError(where) {
  const box = where && where.querySelector('[role="alert"]');
  if (box) { box.hidden = true; box.textContent = ""; }
}

function fields(form) {
  const out = {};
  for (const el of form.querySelectorAll("input, select, textarea")) {
    if (!el.name || el.disabled || el.type === "file" || el.closest("fieldset:disabled")) continue;
    if (el.type === "checkbox") { if (el.hasAttribute("data-flag")) out[el.name] = el.checked; continue; }
    const value = el.value.trim();
    if (value === "") continue;
    out[el.name] = el.type === "number" ? Number(value) : value;
  }
  return out;
}

function counts(job) {
  const parts = Object.entries(job.counts || {}).map(([k, v]) => `${k} ${v}`);
  return parts.join(", ");
}

// --- jobs: follow one until it ends -------------------------------------------------------

async function follow(panel, jobId, onEnd) {
  panel.hidden = false;
  const status = panel.querySelector("[data-job-status]");
  const bar = panel.querySelector("[data-job-bar]");
  const tally = panel.querySelector("[data-job-counts]");
  const link = panel.querySelector("[data-job-link]");
  if (link) link.href = `/jobs/${jobId}`;
  for (;;) {
    const job = await api("GET", `/jobs/${jobId}`);
    const p = job.progress || {};
    if (status) status.textContent = job.status + (job.message ? ` — ${job.message}` : "");
    if (bar) {
      bar.max = p.total || Math.max(p.done || 0, 1);
      bar.value = p.done || 0;
      bar.setAttribute("aria-valuetext", `${p.done || 0} of ${p.total || "?"}`);
    }
    if (tally) tally.textContent = counts(job);
    if (FINISHED.includes(job.status)) {
      if (onEnd) await onEnd(job);
      return job;
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

async function allErrors(jobId, cap = 10000) {
  const items = [];
  let after = null;
  while (items.length < cap) {
    const page = await api("GET", `/jobs/${jobId}/errors?limit=1000` + (after !== null ? `&after=${after}` : ""));
    items.push(...page.items);
    if (page.next_cursor === null || page.next_cursor === undefined) break;
    after = page.next_cursor;
  }
  return items;
}

function csvOf(errors) {
  const cell = (v) => `"${String(v === null || v === undefined ? "" : v).replace(/"/g, '""')}"`;
  const rows = [["index", "key", "code", "message"]];
  for (const e of errors) rows.push([e.index, e.item_key || e.global_key, e.code, e.message]);
  return rows.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}

async function showErrors(panel, job) {
  if (!(job.counts && job.counts.failed)) return;
  const box = panel.querySelector("[data-job-errors]");
  if (!box) return;
  const errors = await allErrors(job.id);
  const body = box.querySelector("tbody");
  body.textContent = "";
  for (const e of errors.slice(0, 500)) {
    const tr = document.createElement("tr");
    for (const v of [e.index, e.item_key || e.global_key || "", e.code, e.message]) {
      const td = document.createElement("td");
      td.textContent = v === null || v === undefined ? "" : v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const link = box.querySelector("[data-download-errors]");
  link.href = URL.createObjectURL(new Blob([csvOf(errors)], { type: "text/csv" }));
  box.hidden = false;
}

// --- import: a manifest, or media files uploaded into the dataset's storage ---------------

async function importFiles(form, files) {
  clearError(form);
  let datasetId = form.querySelector("[name=dataset]").value;
  const newName = form.querySelector("[name=new_dataset]").value.trim();
  if (newName) {
    const made = await api("POST", "/datasets", { name: newName });
    datasetId = String(made.id);
    const catalog = document.querySelector("[data-catalog-link]");
    if (catalog) catalog.href = `/datasets/${made.id}`;
  }
  const upsert = form.querySelector("[name=upsert]").checked;
  const panel = document.querySelector("[data-job-panel]");
  let job;
  if (files.length === 1 && MANIFEST.test(files[0].name)) {
    const file = files[0];
    const query = new URLSearchParams({ filename: file.name, upsert: String(upsert) });
    job = await api("POST", `/datasets/${datasetId}/data-rows?${query}`, file, { contentType: "application/octet-stream" });
  } else {
    const where = await api("POST", "/uploads/destination", { dataset: Number(datasetId) });
    const rows = [];
    const status = panel.querySelector("[data-job-status]");
    panel.hidden = false;
    for (const [i, file] of Array.from(files).entries()) {
      status.textContent = `uploading ${i + 1} of ${files.length}: ${file.name}`;
      const key = where.key_prefix + file.name;
      const query = new URLSearchParams({ key });
      const stored = await api("PUT", `/storages/${where.storage_id}/objects?${query}`, file, { contentType: "application/octet-stream" });
      rows.push(JSON.stringify({ row_data: stored.uri, external_id: file.name }));
    }
    const body = new Blob([rows.join("\n") + "\n"]);
    const query = new URLSearchParams({ filename: "upload.ndjson", upsert: String(upsert) });
    job = await api("POST", `/datasets/${datasetId}/data-rows?${query}`, body, { contentType: "application/x-ndjson" });
  }
  await follow(panel, job.id, (done) => showErrors(panel, done));
}

// --- catalog: facets and selection ----------------------------------------------------------

function withFilter(spec) {
  const url = new URL(window.location.href);
  url.searchParams.delete("after");
  url.searchParams.append("metadata", spec);
  return url.pathname + url.search;
}

function bar(label, count, max, href) {
  const a = document.createElement("a");
  a.className = "bar";
  a.href = href;
  a.setAttribute("aria-label", `${label}: ${count} rows`);
  const name = document.createElement("span");
  name.textContent = label;
  const fill = document.createElement("span");
  fill.className = "fill";
  fill.style.width = `${Math.max(2, Math.round((100 * count) / Math.max(max, 1)))}%`;
  const n = document.createElement("span");
  n.className = "n";
  n.textContent = count.toLocaleString();
  a.append(name, fill, n);
  return a;
}

async function loadFacets(box) {
  try {
    const data = await api("GET", `/datasets/${box.dataset.facets}/facets`);
    box.textContent = "";
    if (!data.values.length && !data.dates.length) {
      box.innerHTML = '<p class="muted">No metadata to count yet.</p>';
      return;
    }
    for (const facet of data.values) {
      const group = document.createElement("div");
      group.className = "facet";
      const h = document.createElement("h3");
      h.textContent = facet.field;
      group.appendChild(h);
      const max = Math.max(...facet.counts.map((c) => c.count));
      for (const c of facet.counts) {
        const op = facet.kind === "enum" ? "eq" : "eq";
        group.appendChild(bar(c.value, c.count, max, withFilter(`${facet.field}:${op}:${c.value}`)));
      }
      if (facet.other) {
        const more = document.createElement("p");
        more.className = "muted";
        more.textContent = `${facet.other.toLocaleString()} more in other values`;
        group.appendChild(more);
      }
      box.appendChild(group);
    }
    for (const facet of data.dates) {
      const group = document.createElement("div");
      group.className = "facet histogram";
      const h = document.createElement("h3");
      h.textContent = facet.field;
      group.appendChild(h);
      const max = Math.max(...facet.buckets.map((b) => b.count));
      const row = document.createElement("div");
      row.className = "columns";
      for (const b of facet.buckets) {
        const url = new URL(window.location.href);
        url.searchParams.delete("after");
        url.searchParams.append("metadata", `${facet.field}:gte:${b.start}`);
        url.searchParams.append("metadata", `${facet.field}:lt:${b.end}`);
        const a = document.createElement("a");
        a.href = url.pathname + url.search;
        a.style.height = `${Math.max(2, Math.round((100 * b.count) / Math.max(max, 1)))}%`;
        a.title = `${b.start.slice(0, 10)} – ${b.end.slice(0, 10)}: ${b.count}`;
        a.setAttribute("aria-label", a.title);
        row.appendChild(a);
      }
      group.appendChild(row);
      box.appendChild(group);
    }
  } catch (error) {
    box.textContent = `Facets unavailable: ${error.message}`;
  }
}

async function setUpSelection() {
  const boxes = document.querySelectorAll("[data-row]");
  const bar = document.querySelector("[data-selection]");
  if (!boxes.length || !bar) return;
  const count = bar.querySelector("[data-selected]");
  const chosen = () => Array.from(boxes).filter((b) => b.checked).map((b) => Number(b.value));
  const update = () => { const n = chosen().length; count.textContent = n; bar.hidden = n === 0; };
  boxes.forEach((b) => b.addEventListener("change", update));
  const select = bar.querySelector("[data-projects]");
  try {
    const projects = await api("GET", "/projects");
    for (const p of projects.items) select.add(new Option(p.name, p.id));
  } catch (error) { /* no projects yet */ }
  bar.querySelector("[data-send-to-project]").addEventListener("click", async () => {
    clearError(bar);
    if (!select.value) { showError(bar, new Error("Create a project first.")); return; }
    try {
      const job = await api("POST", `/projects/${select.value}/tasks`, { data_row_ids: chosen() });
      window.location.href = job && job.id ? `/jobs/${job.id}` : `/projects/${select.value}`;
    } catch (error) { showError(bar, error); }
  });
}

// --- wiring ---------------------------------------------------------------------------------

function on(selector, event, handler) {
  document.addEventListener(event, (e) => {
    const target = e.target.closest(selector);
    if (target) handler(e, target);
  });
}

on("[data-sign-in]", "submit", async (e, form) => {
  e.preventDefault();
  clearError(form);
  try {
    await api("POST", "/session", fields(form));
    window.location.href = form.dataset.next || "/datasets";
  } catch (error) { showError(form, error); }
});

on("[data-sign-out]", "click", async () => {
  await api("DELETE", "/session").catch(() => null);
  window.location.href = "/sign-in";
});

on("form[data-api]", "submit", async (e, form) => {
  e.preventDefault();
  clearError(form);
  const [method, path] = form.dataset.api.split(" ");
  const body = fields(form);
  if (form.hasAttribute("data-field-form")) {
    if (body.options) body.options = body.options.split(",").map((s) => s.trim()).filter(Boolean);
    if (body.kind !== "enum") delete body.options;
    if (body.kind !== "embedding") delete body.dimension;
  }
  try {
    const answer = await api(method, path, body);
    if (form.hasAttribute("data-show-key")) {
      const box = document.querySelector("[data-new-key]");
      box.hidden = false;
      box.querySelector("[data-key-value]").value = answer.key;
      box.querySelector("[data-key-value]").select();
      return;
    }
    const then = form.dataset.then || "reload";
    if (then === "reload") window.location.reload();
    else window.location.href = then.replace("{id}", answer.id);
  } catch (error) { showError(form, error); }
});

on("[data-delete]", "click", async (e, button) => {
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  try {
    await api("DELETE", button.dataset.delete);
    window.location.reload();
  } catch (error) { showError(button.closest("section, article, form, main"), error); }
});

on("[data-rename]", "click", async (e, button) => {
  const name = window.prompt("New name", button.dataset.current);
  if (!name || name === button.dataset.current) return;
  try {
    await api("PATCH", button.dataset.rename, { name });
    window.location.reload();
  } catch (error) { window.alert(error.message); }
});

on("[data-role-of]", "change", async (e, select) => {
  try { await api("PATCH", `/users/${select.dataset.roleOf}`, { role: select.value }); }
  catch (error) { showError(document.querySelector("main"), error); }
});

on("[data-remove-filter]", "click", (e, button) => {
  const chip = button.closest(".chip");
  const form = button.closest("form");
  chip.remove();
  form.submit();
});

on("[data-layer]", "change", (e, box) => {
  const layer = document.querySelector(`[data-overlay="${box.dataset.layer}"]`);
  if (layer) layer.hidden = !box.checked;
});

on("[data-fade]", "input", (e, range) => {
  const layer = document.querySelector(`[data-overlay="${range.dataset.fade}"]`);
  if (layer) layer.style.opacity = String(Number(range.value) / 100);
});

on("[data-import]", "submit", async (e, form) => {
  e.preventDefault();
  const files = form.querySelector("[name=files]").files;
  if (!files.length) { showError(form, new Error("Choose a file first.")); return; }
  try { await importFiles(form, files); } catch (error) { showError(form, error); }
});

on("[data-type-select]", "change", (e, select) => {
  for (const set of document.querySelectorAll("[data-type-fields]")) {
    const mine = set.dataset.typeFields === select.value;
    set.hidden = !mine;
    set.disabled = !mine;
  }
});

on("[data-storage-form]", "submit", async (e, form) => {
  e.preventDefault();
  clearError(form);
  const body = { ...fields(form), [form.dataset.owner]: Number(form.dataset.ownerId) };
  try {
    await api("POST", "/storages", body);
    window.location.reload();
  } catch (error) { showError(form, error); }
});

on("[data-check]", "click", async (e, button) => {
  const out = button.closest("[data-storage]").querySelector("[data-result]");
  out.textContent = "Checking…";
  try {
    const result = await api("POST", `/storages/${button.dataset.check}/validate`);
    const lines = result.ok ? ["Connection OK."] : ["The check failed:"];
    for (const f of result.errors) lines.push(`${f.code}: ${f.message}`);
    for (const f of result.warnings) lines.push(`warning ${f.code}: ${f.message}`);
    out.textContent = lines.join("\n");
    out.className = result.ok ? "result ok" : "result error";
  } catch (error) { out.textContent = error.message; out.className = "result error"; }
});

on("[data-sync]", "click", async (e, button) => {
  const article = button.closest("[data-storage]");
  const panel = article.querySelector("[data-job-panel]");
  button.disabled = true;
  try {
    const job = await api("POST", `/storages/${button.dataset.sync}/sync`);
    const done = await follow(panel, job.id);
    addSyncRow(article, done);
  } catch (error) { article.querySelector("[data-result]").textContent = error.message; }
  button.disabled = false;
});

function addSyncRow(article, job) {
  const table = article.querySelector("[data-syncs]");
  if (!table) return;
  const none = article.querySelector("[data-no-syncs]");
  if (none) none.remove();
  table.hidden = false;
  const tr = document.createElement("tr");
  const when = document.createElement("a");
  when.href = `/jobs/${job.id}`;
  when.textContent = (job.created_at || "").slice(0, 16).replace("T", " ");
  const cells = [when, job.status, counts(job), String(job.counts.failed)];
  for (const value of cells) {
    const td = document.createElement("td");
    if (value instanceof Node) td.appendChild(value); else td.textContent = value;
    tr.appendChild(td);
  }
  table.querySelector("tbody").prepend(tr);
}

on("[data-cancel]", "click", async (e, button) => {
  try { await api("POST", `/jobs/${button.dataset.cancel}/cancel`); button.disabled = true; }
  catch (error) { window.alert(error.message); }
});

async function liveJobs(table) {
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const running = table.querySelectorAll('[data-status="queued"], [data-status="running"]');
    if (!running.length) continue;
    const page = await api("GET", "/jobs?limit=50").catch(() => null);
    if (!page) continue;
    for (const job of page.items) {
      const row = table.querySelector(`[data-job-row="${job.id}"]`);
      if (!row) continue;
      const p = job.progress || {};
      row.dataset.status = job.status;
      row.querySelector('[data-cell="status"]').textContent = job.status;
      const cell = row.querySelector('[data-cell="progress"]');
      const progress = cell.querySelector("progress");
      progress.max = p.total || Math.max(p.done || 0, 1);
      progress.value = p.done || 0;
      cell.lastChild.textContent = ` ${p.done || 0}${p.total ? " / " + p.total : ""}`;
      row.querySelector('[data-cell="counts"]').textContent = counts(job);
    }
  }
}

// --- projects: a config checked and previewed as one types ------------------------------

const configChecks = { timer: null, asked: 0 };

async function checkConfig(form) {
  const area = form.querySelector("[data-config]");
  const status = form.querySelector("[data-config-status]");
  const mine = ++configChecks.asked;
  if (!area.value.trim()) { status.textContent = "Pick a template or paste a config."; return; }
  let result;
  try {
    result = await api("POST", "/projects/check-label-config", { label_config: area.value });
  } catch (error) {
    if (mine !== configChecks.asked) return;
    status.className = "error";
    status.textContent = `Could not check the config: ${error.message}`;
    return;
  }
  if (mine !== configChecks.asked) return;  // typed on since
  if (!result.ok) {
    status.className = "error";
    status.textContent = result.message;
    return;
  }
  status.className = "ok";
  status.textContent = `OK — tasks need: ${result.required_keys.join(", ")}`;
  if (!window.tetherEditor && document.readyState !== "complete") {  // still loading it
    await new Promise((ready) => window.addEventListener("load", ready, { once: true }));
  }
  if (mine !== configChecks.asked) return;
  if (window.tetherEditor) window.tetherEditor.previewConfig("preview", area.value, result.objects);
}

on("[data-project-form] [data-config]", "input", (e, area) => {
  clearTimeout(configChecks.timer);
  configChecks.timer = setTimeout(() => checkConfig(area.form), 400);
});

function useTemplate(select) {
  if (!select.value) return;
  const templates = JSON.parse(document.getElementById("templates").textContent);
  select.form.querySelector("[data-config]").value = templates[select.value];
  checkConfig(select.form);
}

on("[data-project-form] [data-template]", "change", (e, select) => useTemplate(select));

// A template picked, or a config typed or restored by the browser, before this script ran.
function setUpProjectForm() {
  const form = document.querySelector("[data-project-form]");
  if (!form) return;
  const area = form.querySelector("[data-config]");
  const select = form.querySelector("[data-template]");
  if (!area.value.trim() && select && select.value) useTemplate(select);
  else if (area.value.trim()) checkConfig(form);
}

on("[data-project-form]", "submit", async (e, form) => {
  e.preventDefault();
  clearError(form);
  try {
    const project = await api("POST", "/projects", fields(form));
    window.location.href = `/projects/${project.id}`;
  } catch (error) { showError(form, error); }
});

document.addEventListener("DOMContentLoaded", () => {
  const facets = document.querySelector("[data-facets]");
  if (facets) loadFacets(facets);
  setUpSelection();
  setUpProjectForm();
  const job = document.querySelector("[data-job]");
  if (job) follow(job, job.dataset.job);
  const jobs = document.querySelector("[data-live-jobs]");
  if (jobs) liveJobs(jobs);
  const drop = document.querySelector("[data-drop]");
  if (drop) {
    const input = drop.querySelector("input[type=file]");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      input.files = e.dataTransfer.files;
    });
    drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  }
});
