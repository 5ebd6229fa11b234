// The import console: one page over the JSON API (/api/v1). The API key lives in
// sessionStorage only and goes with every request as a bearer credential, with the engagement
// chosen among those the key grants (X-Engagement-ID: the server checks it against the key).
// Every value from the server is put into the page as text (textContent), never as markup.
"use strict";

const API = "/api/v1";
const KEY_STORE = "dataimport.apiKey";
const ENGAGEMENT_STORE = "dataimport.engagement";
const POLL_MS = 1500;
// Statuses after which nothing changes without a decision: polling stops there.
const TERMINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled", "rejected"]);
const WAITING = new Set(["needs_attention", "awaiting_approval"]);
const PHASES = ["upload", "validation", "enrichment", "complete"];
const STATUSES = ["pending", "ingesting", "validating", "enriching", "needs_attention",
  "awaiting_approval", "completed", "completed_with_errors", "failed", "cancelled", "rejected"];
const REFUSED = {
  413: "The file is too large for this service",
  415: "The file is not a CSV, XLSX or JSON file this service can read",
  422: "The upload was refused",
};

// `leaving`: the waiting status a decision was just sent for; the page polls on until the
// import has moved on (the workflow records the new status a moment after it accepts).
// `switched`: the engagement just chosen in the picker, said once the page acts for it.
// `refused`: why a remembered engagement was not granted, shown on the next page drawn.
const state = { whoami: null, categories: null, timer: null, leaving: null, switched: null,
  refused: null };

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ----- small DOM helpers -----------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

function table(caption, headers, rows, attrs) {
  return h("div", { class: "scroll" },
    h("table", attrs || {},
      caption ? h("caption", { text: caption }) : null,
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col", text: name })))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell)))))));
}

function flash(message, kind) {
  const box = $("flash");
  box.textContent = message || "";
  box.className = "flash " + (kind || "error");
  box.hidden = !message;
}

function when(value) {
  return value ? new Date(value).toLocaleString() : "";
}

function number(value) {
  return value === null || value === undefined ? "" : Number(value).toLocaleString();
}

function badge(status) {
  return h("span", { class: "badge s-" + status, "data-status": status, text: status });
}

function describe(error) {
  return error.status === 404 ? "Not found: " + error.message : error.message;
}

function settled(status) {
  return TERMINAL.has(status) || WAITING.has(status);
}

function decided(status, message, show) {
  show(message, "info");
  state.leaving = status.status;
  const box = document.getElementById(status.status === "awaiting_approval" ? "approval" : "decisions");
  if (box) box.querySelectorAll("button, select, textarea").forEach((el) => { el.disabled = true; });
  importView(document.getElementById("view"), status.data_import_id, true);
}

// ----- the API ---------------------------------------------------------------------------

function credential() {
  return sessionStorage.getItem(KEY_STORE);
}

function engagement() {
  return sessionStorage.getItem(ENGAGEMENT_STORE);
}

async function call(path, options) {
  const opts = Object.assign({}, options || {});
  const chosen = engagement() ? { "X-Engagement-ID": engagement() } : {};
  opts.headers = Object.assign({ Authorization: "Bearer " + credential() }, chosen, opts.headers || {});
  if (opts.json !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.json);
    delete opts.json;
  }
  const response = await fetch(API + path, opts);
  if (response.status === 401 && path !== "/whoami") {
    signOut("Your session ended: sign in again.");
  }
  if (!response.ok) {
    let code = "http-" + response.status;
    let message = response.statusText;
    try {
      const body = await response.json();
      if (body && body.error) ({ code, message } = body.error);
      else if (body && body.detail) message = JSON.stringify(body.detail);
    } catch (_) { /* not JSON: keep the status text */ }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

async function getJson(path) {
  return (await call(path)).json();
}

async function postJson(path, body) {
  return (await call(path, { method: "POST", json: body })).json();
}

async function download(path, filename) {
  // A plain link could not send the credential: fetch, then hand the browser a blob.
  const blob = await (await call(path)).blob();
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function temporalLink(status) {
  const who = state.whoami;
  if (!who || !who.temporal_web_ui_url) return null;
  const href = who.temporal_web_ui_url.replace(/\/$/, "") + "/namespaces/" +
    encodeURIComponent(who.temporal_namespace) + "/workflows/" + encodeURIComponent(status.workflow_id);
  return h("a", { href, target: "_blank", rel: "noopener", class: "temporal",
    "aria-label": "Workflow of " + (status.filename || status.data_import_id) + " in the Temporal Web UI",
    text: "Temporal" });
}

// ----- session ---------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  sessionStorage.removeItem(ENGAGEMENT_STORE);
  state.whoami = null;
  state.categories = null;
  $("nav").hidden = true;
  $("session").hidden = true;
  location.hash = "#/signin";
  route();
  if (message) flash(message, "info");
}

async function loadSession() {
  let who;
  try {
    who = await getJson("/whoami");
  } catch (error) {
    // A remembered engagement the key does not grant (any more): back to the key's default.
    if (error.code !== "tenant-not-granted" || !engagement()) throw error;
    sessionStorage.removeItem(ENGAGEMENT_STORE);
    who = await getJson("/whoami");
    state.switched = null;
    state.refused = "Refused: " + error.message + ". Acting for the key's default engagement.";
  }
  state.whoami = who;
  // Named on every request from here on, so the page never drifts to another engagement.
  if (who.engagement_id) sessionStorage.setItem(ENGAGEMENT_STORE, who.engagement_id);
  $("tenant-client").textContent = who.client_account_id;
  $("tenant-engagement").textContent = who.engagement_id || "none chosen";
  $("tenant-scope").textContent = who.scope || "no scope";
  engagementPicker(who);
  $("nav").hidden = !who.engagement_id;
  $("session").hidden = false;
}

function engagementPicker(who) {
  const several = who.engagement_ids.length > 1;
  const picker = $("engagement-picker");
  $("engagement-choice").hidden = !several;
  $("engagement-fixed").hidden = several; // the picker shows it
  if (!several) return;
  const options = who.engagement_ids.map((id) =>
    h("option", { value: id, text: id, selected: id === who.engagement_id }));
  if (!who.engagement_id) options.unshift(h("option", { value: "", text: "Choose an engagement", selected: true }));
  picker.replaceChildren(...options);
}

function switchEngagement(id) {
  if (!id || !state.whoami || !state.whoami.engagement_ids.includes(id)) return;
  sessionStorage.setItem(ENGAGEMENT_STORE, id);
  state.whoami = null;
  state.switched = id;
  // What was on screen belongs to the other engagement: start again from its imports.
  if (location.hash === "#/imports") route();
  else location.hash = "#/imports";
}

function chooseEngagementView(view) {
  view.append(h("section", { class: "card narrow", id: "choose-engagement" },
    h("h1", { text: "Choose an engagement" }),
    h("p", { text: "This credential grants several engagements and names no default: choose " +
      "the one to act for with the Engagement picker at the top of the page." })));
}

function signInView(view) {
  const input = h("input", { id: "api-key", name: "api-key", type: "password", required: true,
    autocomplete: "off", spellcheck: "false", "aria-describedby": "api-key-help" });
  const form = h("form", { id: "sign-in", class: "card narrow" },
    h("h1", { text: "Sign in" }),
    h("label", { for: "api-key", text: "API key" }),
    input,
    h("p", { id: "api-key-help", class: "hint",
      text: "A key from `dataimport keys create` (dik_…) or an OIDC access token. It is kept " +
        "in this browser tab only and sent with every request." }),
    h("button", { type: "submit", text: "Sign in" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, input.value.trim());
    try {
      await loadSession();
      flash("");
      location.hash = "#/imports";
    } catch (error) {
      sessionStorage.removeItem(KEY_STORE);
      flash("Sign-in refused: " + error.message);
    }
  });
  view.append(form);
  input.focus();
}

// ----- upload ----------------------------------------------------------------------------

async function categories() {
  if (!state.categories) state.categories = (await getJson("/categories")).items;
  return state.categories;
}

async function uploadView(view) {
  const cats = await categories();
  const tiles = h("fieldset", { class: "tiles" },
    h("legend", { text: "Import category" }),
    cats.map((cat, index) => h("label", { class: "tile", for: "cat-" + cat.name },
      h("input", { type: "radio", name: "import_category", id: "cat-" + cat.name,
        value: cat.name, checked: index === 0 }),
      h("strong", { text: cat.title }),
      h("span", { class: "desc", text: cat.description }),
      h("span", { class: "meta" }, "Accepts: ", cat.formats.join(", "),
        cat.multi_sheet ? " (multi-sheet workbooks)" : ""),
      h("span", { class: "meta" }, "Agents: ", cat.agents.join(", ")),
      cat.masks_values ? h("span", { class: "meta", text: "Values are masked outside staging." }) : null)));
  const fileInput = h("input", { type: "file", id: "file", name: "file", required: true,
    accept: ".csv,.txt,.xlsx,.json,text/csv,application/json" });
  const chosen = h("span", { id: "file-chosen", class: "hint", text: "No file chosen" });
  const drop = h("div", { id: "drop-zone", class: "drop" },
    h("label", { for: "file", text: "Drop a file here, or choose one" }), fileInput, chosen);
  let dropped = null;
  fileInput.addEventListener("change", () => {
    dropped = null;
    chosen.textContent = fileInput.files[0] ? fileInput.files[0].name : "No file chosen";
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) {
      dropped = event.dataTransfer.files[0];
      chosen.textContent = dropped.name;
    }
  });
  const requestId = h("input", { id: "request-id", name: "request_id", maxlength: 200 });
  const config = h("textarea", { id: "processing-config", name: "processing_config", rows: 3,
    placeholder: '{"max_invalid_ratio": 0.2}' });
  const error = h("p", { id: "upload-error", class: "flash error", role: "alert", hidden: true });
  const form = h("form", { id: "upload-form", class: "card" },
    h("h1", { text: "Upload a file" }), tiles, drop,
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "request-id", text: "Request id (optional, same id → same import)" }), requestId),
      h("div", {}, h("label", { for: "processing-config", text: "Processing config (optional JSON)" }), config)),
    error,
    h("button", { type: "submit", id: "upload-submit", text: "Upload and import" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const file = dropped || fileInput.files[0];
    if (!file) {
      error.textContent = "Choose a file first.";
      error.hidden = false;
      return;
    }
    // The File is a handle on disk: the browser streams it, it is never read into the page.
    const body = new FormData();
    body.append("import_category", form.querySelector("input[name=import_category]:checked").value);
    if (requestId.value.trim()) body.append("request_id", requestId.value.trim());
    if (config.value.trim()) body.append("processing_config", config.value.trim());
    body.append("file", file, file.name);
    const button = $("upload-submit");
    button.disabled = true;
    try {
      const accepted = await (await call("/imports", { method: "POST", body })).json();
      location.hash = "#/imports/" + accepted.data_import_id;
    } catch (failure) {
      const reason = REFUSED[failure.status] || "The upload failed";
      error.textContent = reason + " (" + failure.status + "): " + failure.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  view.append(form);
}

// ----- imports list ----------------------------------------------------------------------

async function importsView(view) {
  const cats = await categories();
  const category = h("select", { id: "filter-category" },
    h("option", { value: "", text: "All categories" }),
    cats.map((cat) => h("option", { value: cat.name, text: cat.title })));
  const status = h("select", { id: "filter-status" },
    h("option", { value: "", text: "All statuses" }),
    STATUSES.map((name) => h("option", { value: name, text: name })));
  const body = h("div", { id: "imports-table", "aria-live": "polite" });
  view.append(h("section", { class: "card" },
    h("h1", { text: "Imports" }),
    h("div", { class: "row filters" },
      h("div", {}, h("label", { for: "filter-category", text: "Category" }), category),
      h("div", {}, h("label", { for: "filter-status", text: "Status" }), status)),
    body));
  let items = [];
  const draw = () => {
    const shown = items.filter((item) =>
      (!category.value || item.category === category.value) && (!status.value || item.status === status.value));
    body.replaceChildren(shown.length ? table("Newest first",
      ["File", "Category", "Status", "Progress", "Rows", "Valid", "Invalid", "Workflow"],
      shown.map((item) => [
        h("a", { href: "#/imports/" + item.data_import_id, class: "import-link",
          "data-id": item.data_import_id, text: item.filename || item.data_import_id }),
        item.category,
        badge(item.status),
        h("progress", { max: 1, value: item.progress, "aria-label": "Progress of " + (item.filename || "import") },
          Math.round(item.progress * 100) + "%"),
        number(item.total_rows), number(item.valid_rows), number(item.invalid_rows),
        temporalLink(item) || "",
      ]), { id: "imports" }) : h("p", { class: "empty", text: "No imports yet." }));
  };
  category.addEventListener("change", draw);
  status.addEventListener("change", draw);
  const refresh = async () => {
    items = (await getJson("/imports?limit=500")).items;
    // The list is the database record; a running import's live progress is its workflow's.
    items = await Promise.all(items.map((item) => settled(item.status)
      ? item : getJson("/imports/" + item.data_import_id).catch(() => item)));
    draw();
    return items.every((item) => settled(item.status));
  };
  poll(refresh);
}

function poll(refresh) {
  stopPolling();
  const tick = async () => {
    let done = true;
    try {
      done = await refresh();
    } catch (error) {
      if (error.status !== 401) flash(describe(error));
      // Unknown (or another tenant's), or not allowed: stop asking; anything else may pass.
      done = [401, 403, 404].includes(error.status);
    }
    if (!done) state.timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function stopPolling() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

// ----- one import ------------------------------------------------------------------------

async function importView(view, id, keep) {
  let root = document.getElementById("import");
  if (!keep || !root) {
    root = h("section", { class: "import", id: "import", "data-id": id });
    view.replaceChildren(root);
  }
  let drawnFinal = null;
  poll(async () => {
    const status = await getJson("/imports/" + id);
    // Still the status a decision was sent for: keep the page (and its answer) as it is.
    if (state.leaving && status.status === state.leaving) return false;
    state.leaving = null;
    const report = await getJson("/imports/" + id + "/report");
    const final = settled(status.status);
    // Settled pages are drawn once (decisions and forms keep what the user typed).
    if (!final || drawnFinal !== status.status) {
      const steps = (await getJson("/imports/" + id + "/steps")).items;
      await drawImport(root, status, report, steps);
      drawnFinal = final ? status.status : null;
    }
    return final;
  });
}

async function drawImport(root, status, report, steps) {
  const parts = [
    h("div", { class: "card" },
      h("h1", {}, status.filename || status.data_import_id, " ", badge(status.status)),
      h("p", { class: "meta" }, status.category, " · import ", h("code", { text: status.data_import_id }),
        " · ", number(report.file_size), " bytes · ", report.detected_format.format || "", " ",
        temporalLink(status) || ""),
      h("progress", { id: "progress", max: 1, value: status.progress, "aria-label": "Progress" }),
      timeline(status, report),
      counters(status, report)),
  ];
  if (status.error_code || status.error_message) {
    parts.push(h("div", { class: "card attention", id: "why" },
      h("h2", { text: status.status === "needs_attention" ? "Why it needs attention" : "Last error" }),
      h("p", {}, h("code", { text: status.error_code || "" }), " ", status.error_message || "")));
  }
  if (status.status === "needs_attention") parts.push(decisions(status, report));
  if (status.status === "awaiting_approval") parts.push(await approval(status));
  parts.push(agents(steps), findings(report), downloads(status, report), sample(report));
  root.replaceChildren(...parts);
}

function timeline(status, report) {
  const reached = {};
  for (const step of report.transitions) {
    if (step.phase && !reached[step.phase]) reached[step.phase] = step.at;
  }
  if (!reached.upload) reached.upload = report.created_at;
  const current = PHASES.indexOf(status.phase);
  const done = TERMINAL.has(status.status) && status.status !== "failed" && status.status !== "cancelled";
  return h("div", {},
    h("h2", { text: "Phases" }),
    h("ol", { class: "timeline", id: "timeline" }, PHASES.map((phase, index) => {
      const where = index < current || (done && index <= current) ? "done"
        : index === current ? "current" : "todo";
      return h("li", { class: where, "data-phase": phase, "aria-current": where === "current" ? "step" : null },
        h("strong", { text: phase }), h("span", { class: "when", text: when(reached[phase]) }));
    })),
    h("details", {}, h("summary", { text: "Every status change" }),
      table(null, ["At", "Status", "Phase", "Error"], report.transitions.map((t) => [
        when(t.at), t.status, t.phase, t.error_code ? t.error_code + ": " + (t.error_message || "") : ""]))));
}

function counters(status, report) {
  const items = [
    ["Rows", status.total_rows], ["Valid", status.valid_rows], ["Invalid", status.invalid_rows],
    ["Warnings", status.warning_rows], ["Blank", status.blank_rows], ["Processed", status.processed_rows],
    ["Assets created", status.assets_created], ["Assets updated", status.assets_updated],
    ["Dependencies", status.dependencies_created], ["Groups", status.dependency_groups],
  ];
  if (report.quality_score !== null && report.quality_score !== undefined) {
    items.push(["Quality score", report.quality_score]);
  }
  return h("dl", { class: "counters", id: "counters" }, items.map(([name, value]) =>
    h("div", { "data-counter": name }, h("dt", { text: name }), h("dd", { text: number(value) }))));
}

function agents(steps) {
  return h("div", { class: "card", id: "agents" },
    h("h2", { text: "Agents" }),
    steps.length ? table(null, ["Agent", "Step", "Status", "Rows", "Findings", "Time"],
      steps.map((step) => [step.agent, step.step, badge(step.status), number(step.records_processed),
        Object.entries(step.findings || {}).map(([code, count]) =>
          h("span", { class: "finding" }, code, ": ",
            typeof count === "number" ? number(count)
              : typeof count === "object" ? JSON.stringify(count) : String(count))),
        step.duration_ms !== null ? step.duration_ms + " ms" : ""]))
      : h("p", { class: "empty", text: "No agent has run yet." }));
}

function findings(report) {
  const codes = Object.entries(report.issues || {});
  return h("div", { class: "card", id: "findings" },
    h("h2", { text: "Validation report" }),
    codes.length ? codes.map(([code, entry]) => h("section", { class: "code", "data-code": code },
      h("h3", {}, h("code", { text: code }), " ", h("span", { class: "sev " + entry.severity, text: entry.severity }),
        " · ", number(entry.count), entry.count === 1 ? " finding" : " findings"),
      table(null, ["Row", "Field", "Message"],
        (entry.examples || []).map((e) => [String(e.row), e.field || "", e.message || ""]))))
      : h("p", { class: "empty", text: "No findings." }));
}

function downloads(status, report) {
  const purged = report.staging_purged_at;
  const button = (label, id, path, name) => h("button", { type: "button", id, disabled: purged ? true : null,
    onclick: async () => {
      try { await download(path, name); } catch (error) { flash("Download failed: " + error.message); }
    } }, label);
  const base = "/imports/" + status.data_import_id;
  return h("div", { class: "card", id: "downloads" },
    h("h2", { text: "Downloads" }),
    purged ? h("p", { text: "The staged rows were removed after retention on " + when(purged) + "." }) : null,
    button("Error report (CSV)", "download-errors", base + "/errors",
      "import-" + status.data_import_id + "-errors.csv"), " ",
    button("Rejected rows (CSV)", "download-failed-rows", base + "/failed-rows",
      "import-" + status.data_import_id + "-failed-rows.csv"));
}

function sample(report) {
  const rows = report.sample || [];
  // In the file's own column order (JSON objects come back in the database's key order).
  const keys = new Set(rows.flatMap((row) => Object.keys(row)));
  const headers = [...report.headers.filter((name) => keys.has(name)),
    ...[...keys].filter((name) => !report.headers.includes(name))];
  return h("div", { class: "card", id: "sample" },
    h("h2", { text: "Sample" }),
    rows.length ? table("The first two staged rows (masked for sensitive data)", headers,
      rows.map((row) => headers.map((name) => String(row[name] ?? ""))))
      : h("p", { class: "empty", text: "No sample yet." }));
}

// ----- decisions -------------------------------------------------------------------------

function decisions(status, report) {
  const base = "/imports/" + status.data_import_id;
  const current = Object.assign({}, report.processing_config.column_mapping || {}, report.suggested_mapping);
  const unmapped = new Set(report.unmapped_headers);
  const headers = report.headers.length ? report.headers : report.unmapped_headers;
  // Unmapped headers first: they are what the user has to decide on.
  const ordered = [...headers].sort((a, b) => Number(unmapped.has(b)) - Number(unmapped.has(a)));
  const selects = ordered.map((header, index) => {
    const select = h("select", { id: "map-" + index, "data-header": header },
      h("option", { value: "", text: "— not mapped —" }),
      report.category_fields.map((field) => h("option", { value: field, text: field,
        selected: current[header] === field })));
    return [header, select];
  });
  const mapping = () => Object.fromEntries(selects.filter(([, s]) => s.value).map(([header, s]) => [header, s.value]));
  const preview = h("div", { id: "mapping-preview", "aria-live": "polite" });
  const answer = h("p", { id: "decision-result", role: "alert", class: "flash", hidden: true });
  const show = (text, kind) => { answer.textContent = text; answer.className = "flash " + kind; answer.hidden = false; };
  const showPreview = async () => {
    try {
      const result = await postJson(base + "/mapping-preview", { column_mapping: mapping() });
      preview.replaceChildren(result.rows.length ? table("First rows as mapped", ["Row", ...result.fields],
        result.rows.map((row) => [String(row.row), ...result.fields.map((f) => String(row.values[f] ?? ""))]))
        : h("p", { text: "No staged rows to preview." }),
      h("p", { class: "hint" }, "Still unmapped: ", result.unmapped_headers.join(", ") || "none"));
    } catch (error) {
      show("Preview failed: " + error.message, "error");
    }
  };
  const retry = async () => {
    const config = Object.assign({}, report.processing_config, { column_mapping: mapping() });
    try {
      await postJson(base + "/retry", { processing_config: config });
      decided(status, "Retry accepted: the import runs again from its failed phase.", show);
    } catch (error) {
      show("Retry refused: " + error.message, "error");
    }
  };
  const reason = h("textarea", { id: "fail-reason", rows: 2, required: true });
  const fail = async () => {
    if (!reason.value.trim()) { show("Give a reason to fail the import.", "error"); reason.focus(); return; }
    try {
      await postJson(base + "/fail", { reason: reason.value.trim() });
      decided(status, "Fail accepted: the import ends as failed.", show);
    } catch (error) {
      show("Fail refused: " + error.message, "error");
    }
  };
  const suggested = Object.keys(report.suggested_mapping).length;
  return h("div", { class: "card decide", id: "decisions" },
    h("h2", { text: "Decide" }),
    answer,
    h("h3", { text: "Retry with a column mapping" }),
    suggested ? h("p", { class: "hint", text: "A model's suggestion is pre-filled: check it first." }) : null,
    table("The file's headers beside the category's fields", ["File header", "Field"],
      selects.map(([header, select]) => [
        h("label", { for: select.id, class: unmapped.has(header) ? "unmapped" : null, text: header }), select]),
      { id: "mapping-editor" }),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "preview-mapping", onclick: showPreview, text: "Preview mapping" }),
      h("button", { type: "button", id: "retry", onclick: retry, text: "Retry with this mapping" })),
    preview,
    h("h3", { text: "Fail the import" }),
    h("label", { for: "fail-reason", text: "Reason" }), reason,
    h("div", { class: "actions" },
      h("button", { type: "button", id: "fail", class: "danger", onclick: fail, text: "Fail import" })));
}

async function approval(status, notice) {
  const base = "/imports/" + status.data_import_id;
  const box = h("div", { class: "card decide", id: "approval" }, h("h2", { text: "Plan: approve or reject" }));
  const answer = h("p", { id: "approval-result", role: "alert", class: "flash", hidden: true });
  const show = (text, kind) => { answer.textContent = text; answer.className = "flash " + kind; answer.hidden = false; };
  let plan;
  try {
    plan = await getJson(base + "/plan");
  } catch (error) {
    box.append(h("p", { text: "No plan to show: " + error.message }));
    return box;
  }
  // The plan shown is the plan approved: a new one (made again) replaces this box.
  const redraw = async (message) => box.replaceWith(await approval(status, message));
  const section = (title, id, part, headers, cells) => h("section", { id },
    h("h3", {}, title, ": ", number(part.count)),
    part.sample.length ? table("A sample", headers, part.sample.map(cells)) : null);
  const reason = h("textarea", { id: "reject-reason", rows: 2 });
  const decide = async (what, body) => {
    try {
      await postJson(base + "/" + what, body);
      decided(status, what === "approve" ? "Approved: enrichment runs now."
        : "Rejected: the inventory is unchanged.", show);
    } catch (error) {
      if (what === "approve" && ["plan-stale", "plan-changed"].includes(error.code)) {
        // The service's words ("not approved: ...; a fresh plan was made ..."), as a sentence.
        await redraw({ text: error.message.charAt(0).toUpperCase() + error.message.slice(1), kind: "error" });
        return;
      }
      show((what === "approve" ? "Approve" : "Reject") + " refused: " + error.message, "error");
    }
  };
  const replan = async () => {
    try {
      await postJson(base + "/plan", {});
      await redraw({ text: "The plan was made again from the inventory as it is now.", kind: "info" });
    } catch (error) {
      show("Planning again failed: " + error.message, "error");
    }
  };
  if (notice) show(notice.text, notice.kind);
  box.append(...[answer,
    h("p", { class: "meta", id: "plan-meta", "data-plan-id": plan.plan_id || "" },
      "Plan ", h("code", { text: plan.plan_id || "(no id)" }), ", made ", when(plan.computed_at)),
    plan.stale ? h("div", { class: "flash error", id: "plan-stale", role: "status" },
      h("strong", { text: "This plan is stale: " }), plan.stale_reason || "the inventory changed",
      ". Approving makes it again first; or ",
      h("button", { type: "button", id: "replan", onclick: replan, text: "Make the plan again" })) : null,
    section("Assets to create", "plan-create", plan.assets_to_create, ["Name", "Type"], (a) => [a.name, a.asset_type]),
    section("Assets to update", "plan-update", plan.assets_to_update, ["Name", "Field", "Old", "New"],
      (a) => [a.name, a.field, String(a.old ?? ""), String(a.new ?? "")]),
    section("Dependencies to add", "plan-dependencies", plan.dependencies_to_add, ["Source", "Target", "Type"],
      (d) => [d.source, d.target, d.dependency_type]),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "approve", text: "Approve this plan",
        onclick: () => decide("approve", plan.plan_id ? { plan_id: plan.plan_id } : {}) })),
    h("label", { for: "reject-reason", text: "Reason to reject" }), reason,
    h("div", { class: "actions" },
      h("button", { type: "button", id: "reject", class: "danger",
        onclick: () => decide("reject", { reason: reason.value.trim() || "rejected in the console" }),
        text: "Reject" }))].filter(Boolean)); // append() would write a null as "null"
  return box;
}

// ----- inventory -------------------------------------------------------------------------

function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined);
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

async function assetsView(view) {
  const [cats, facets] = await Promise.all([categories(), getJson("/asset-facets")]);
  const search = h("input", { id: "asset-search", type: "search" });
  const type = h("select", { id: "asset-type" }, h("option", { value: "", text: "All types" }),
    facets.asset_types.map((t) => h("option", { value: t, text: t })));
  const env = h("select", { id: "asset-environment" }, h("option", { value: "", text: "All environments" }),
    facets.environments.map((t) => h("option", { value: t, text: t })));
  const source = h("select", { id: "asset-source" }, h("option", { value: "", text: "All sources" }),
    cats.map((c) => h("option", { value: c.name, text: c.title })));
  const list = h("div", { id: "assets-table", "aria-live": "polite" });
  const detail = h("div", { id: "asset-detail" });
  const more = h("button", { type: "button", id: "assets-more", hidden: true, text: "More" });
  let cursor = null;
  let rows = [];
  const load = async (append) => {
    const page = await getJson("/assets" + query({ q: search.value.trim(), asset_type: type.value,
      environment: env.value, source_category: source.value, limit: 100, cursor: append ? cursor : "" }));
    rows = append ? rows.concat(page.items) : page.items;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    list.replaceChildren(rows.length ? table(null, ["Name", "Type", "Environment", "Host", "IP", "Group"],
      rows.map((a) => [
        h("button", { type: "button", class: "linkish asset-name", onclick: () => showAsset(detail, a), text: a.name }),
        a.asset_type, a.environment || "", a.hostname || "", a.ip_address || "",
        a.dependency_group ? h("a", { href: "#/groups/" + a.dependency_group, text: "graph" }) : ""]),
      { id: "assets" }) : h("p", { class: "empty", text: "No assets match." }));
  };
  const form = h("form", { class: "row filters", role: "search" },
    h("div", {}, h("label", { for: "asset-search", text: "Search name, host, FQDN or IP" }), search),
    h("div", {}, h("label", { for: "asset-type", text: "Type" }), type),
    h("div", {}, h("label", { for: "asset-environment", text: "Environment" }), env),
    h("div", {}, h("label", { for: "asset-source", text: "Source category" }), source),
    h("div", {}, h("button", { type: "submit", id: "asset-filter", text: "Filter" })));
  form.addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  [type, env, source].forEach((el) => el.addEventListener("change", () => load(false)));
  more.addEventListener("click", () => load(true));
  view.append(h("section", { class: "card" }, h("h1", { text: "Assets" }), form, list, more), detail);
  await load(false);
}

function showAsset(detail, asset) {
  const entries = Object.entries(asset).filter(([, v]) => v !== null && v !== "" &&
    !(Array.isArray(v) && !v.length) && !(typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length));
  detail.replaceChildren(h("section", { class: "card", "aria-labelledby": "asset-title" },
    h("h2", { id: "asset-title", tabindex: "-1", text: asset.name }),
    h("dl", { class: "fields" }, entries.map(([name, value]) => h("div", {},
      h("dt", { text: name }),
      h("dd", {}, name === "source_import_id" ? h("a", { href: "#/imports/" + value, text: String(value) })
        : typeof value === "object" ? JSON.stringify(value) : String(value)))))));
  $("asset-title").focus();
}

async function dependenciesView(view) {
  const protocol = h("input", { id: "dep-protocol", size: 6 });
  const port = h("input", { id: "dep-port", type: "number", min: 0, max: 65535 });
  const list = h("div", { id: "dependencies-table" });
  const more = h("button", { type: "button", id: "deps-more", hidden: true, text: "More" });
  let cursor = null;
  let rows = [];
  const load = async (append) => {
    const page = await getJson("/dependencies" + query({ protocol: protocol.value.trim(),
      port: port.value, limit: 200, cursor: append ? cursor : "" }));
    rows = append ? rows.concat(page.items) : page.items;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    list.replaceChildren(rows.length ? dependencyTable(rows) : h("p", { class: "empty", text: "No dependencies." }));
  };
  const form = h("form", { class: "row filters" },
    h("div", {}, h("label", { for: "dep-protocol", text: "Protocol" }), protocol),
    h("div", {}, h("label", { for: "dep-port", text: "Port" }), port),
    h("div", {}, h("button", { type: "submit", text: "Filter" })));
  form.addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  more.addEventListener("click", () => load(true));
  view.append(h("section", { class: "card" }, h("h1", { text: "Dependencies" }), form, list, more));
  await load(false);
}

function dependencyTable(rows) {
  return table(null, ["Source", "Target", "Type", "Port", "Protocol", "Connections", "Bytes", "Last seen"],
    rows.map((d) => [d.source_name, d.target_name, d.dependency_type, d.port ?? "", d.protocol || "",
      number(d.conn_count), number(d.bytes_total), when(d.last_seen)]), { id: "dependencies" });
}

async function groupsView(view) {
  const page = await getJson("/dependency-groups?limit=200");
  view.append(h("section", { class: "card" }, h("h1", { text: "Move groups" }),
    h("p", { class: "hint", text: "Dependency groups (connected components): move-group candidates, largest first." }),
    page.items.length ? table(null, ["Group", "Assets", "Dependencies", "Members"],
      page.items.map((g) => [h("a", { href: "#/groups/" + g.group, class: "group-link", text: g.group }),
        number(g.assets), number(g.dependencies), g.sample.join(", ")]), { id: "groups" })
      : h("p", { class: "empty", text: "No dependency groups yet." })));
}

async function allPages(path) {
  let items = [];
  let cursor = "";
  for (let i = 0; i < 20; i++) { // at most 20 pages of 1000: a picture, not an export
    const page = await getJson(path + (path.includes("?") ? "&" : "?") + query({ limit: 1000, cursor }).slice(1));
    items = items.concat(page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return items;
}

async function graphView(view, group) {
  const [assets, edges] = await Promise.all([
    allPages("/assets?dependency_group=" + encodeURIComponent(group)),
    allPages("/dependencies?dependency_group=" + encodeURIComponent(group)),
  ]);
  const tip = h("div", { id: "graph-tip", class: "tip", role: "status", "aria-live": "polite" });
  const canvas = h("div", { id: "graph", class: "graph", role: "img",
    "aria-label": "Dependency graph of " + group + ": " + assets.length + " assets, " + edges.length + " dependencies" });
  view.append(h("section", { class: "card" },
    h("h1", {}, "Move group ", h("code", { text: group })),
    h("p", { class: "meta", id: "graph-summary", text: assets.length + " assets · " + edges.length + " dependencies" }),
    assets.length ? canvas : h("p", { class: "empty", text: "No such group for this tenant." }), tip,
    h("details", {}, h("summary", { text: "The same edges as a table" }), dependencyTable(edges))));
  if (!assets.length) return;
  const portText = (d) => (d.protocol || "") + (d.port !== null && d.port !== undefined ? "/" + d.port : "");
  const cy = window.cytoscape({
    container: canvas,
    elements: [
      ...assets.map((a) => ({ data: { id: a.id, label: a.name, type: a.asset_type } })),
      ...edges.map((d) => ({ data: { id: d.id, source: d.source_asset_id, target: d.target_asset_id,
        ports: portText(d), conns: d.conn_count, kind: d.dependency_type } })),
    ],
    style: [
      { selector: "node", style: { label: "data(label)", "background-color": "#2f6f9f", color: "#1b1b1b",
        "font-size": 11, "text-valign": "bottom", "text-margin-y": 4, width: 22, height: 22 } },
      { selector: "edge", style: { width: 2, "line-color": "#8a99a8", "target-arrow-color": "#8a99a8",
        "target-arrow-shape": "triangle", "curve-style": "bezier" } },
      { selector: "edge.hover", style: { label: "data(ports)", "line-color": "#c2410c",
        "target-arrow-color": "#c2410c", "font-size": 11, "text-background-color": "#fff",
        "text-background-opacity": 1 } },
    ],
    layout: { name: assets.length > 1 ? "cose" : "grid", animate: false, randomize: false, padding: 30 },
    maxZoom: 1.6, // a small group stays a picture, not a few giant circles
  });
  window.consoleGraph = cy; // for tests and the curious: the drawn graph's elements
  cy.on("mouseover", "edge", (event) => {
    const d = event.target.data();
    event.target.addClass("hover");
    tip.textContent = cy.getElementById(d.source).data("label") + " → " + cy.getElementById(d.target).data("label") +
      ": " + (d.ports || "no port") +
      (d.conns ? " · " + number(d.conns) + (d.conns === 1 ? " connection" : " connections") : "") +
      " (" + d.kind + ")";
  });
  cy.on("mouseout", "edge", (event) => { event.target.removeClass("hover"); });
}

// ----- routing ---------------------------------------------------------------------------

const ROUTES = [
  [/^#\/upload$/, uploadView],
  [/^#\/imports$/, importsView],
  [/^#\/imports\/([0-9a-f-]{36})$/, importView],
  [/^#\/assets$/, assetsView],
  [/^#\/dependencies$/, dependenciesView],
  [/^#\/groups$/, groupsView],
  [/^#\/groups\/(G-[0-9a-f-]{36})$/, graphView],
];

async function route() {
  stopPolling();
  state.leaving = null;
  const view = $("view");
  view.replaceChildren();
  flash("");
  if (!credential()) {
    signInView(view);
    return;
  }
  try {
    if (!state.whoami) await loadSession();
  } catch (error) {
    if (error.status === 401) return; // signOut has shown the sign-in form
    flash(error.message);
    return;
  }
  if (state.refused) flash(state.refused);
  else if (state.switched) flash("Now acting for engagement " + state.switched + ".", "info");
  state.refused = state.switched = null;
  if (!state.whoami.engagement_id) {
    chooseEngagementView(view);
    return;
  }
  const hash = location.hash || "#/imports";
  for (const [pattern, draw] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      document.querySelectorAll("#nav a").forEach((a) =>
        a.setAttribute("aria-current", hash.startsWith(a.getAttribute("href")) ? "page" : "false"));
      try {
        await draw(view, ...match.slice(1));
      } catch (error) {
        if (error.status !== 401) flash(describe(error));
      }
      $("main").focus({ preventScroll: true });
      return;
    }
  }
  location.hash = "#/imports";
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("engagement-picker").addEventListener("change", (event) => switchEngagement(event.target.value));
  window.addEventListener("hashchange", route);
  route();
});
