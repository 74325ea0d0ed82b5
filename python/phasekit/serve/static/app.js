// The dashboard page: reads only the JSON API under /api/ and follows one
// event stream (/api/events) for the whole page. Every value from the server
// is put in the page with textContent, never as HTML: a file named
// "<script>" shows as those characters.
"use strict";

// The CSRF token every action carries; a restarted server has a new one,
// asked for again when an action is refused for it.
let csrf = document.querySelector('meta[name="csrf-token"]').content;
const state = {
  tab: "jobs",
  detail: null,        // the id of the job shown in detail, if any
  lastId: null,        // the id of the newest event applied
  source: null,        // the EventSource while the page is visible
  rows: new Map(),     // job id -> its row in the jobs table
  selected: new Set(), // the ids of the jobs ticked for a bulk action
  task: null,          // the id of the task shown in detail, if any
  thumbs: null,        // the location whose thumbnails are shown: {id, next}
  readOnly: false,     // the token may only read: no action is offered
  timers: {},
};

// ---- helpers ---------------------------------------------------------------

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function cell(row, text, cls) {
  const td = el("td", text, cls);
  row.appendChild(td);
  return td;
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return new Date(seconds * 1000).toLocaleString();
}

function took(start, end) {
  if (!start || !end) return "";
  const s = end - start;
  return s < 60 ? s.toFixed(2) + " s" : (s / 60).toFixed(1) + " min";
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + " " + units[i];
}

function say(text, isError) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = !text;
  clearTimeout(state.timers.message);
  if (text) state.timers.message = setTimeout(() => { box.hidden = true; }, 6000);
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (response.status === 401) { location.href = "/login"; throw new Error("log in"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

async function post(path, body, retried) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json();
  if (response.status === 403 && !retried && /csrf/i.test(answer.error.message)) {
    csrf = (await api("/api/session")).csrf_token;
    return post(path, body, true);
  }
  if (!response.ok) throw new Error(answer.error ? answer.error.message : response.statusText);
  return answer;
}

// Coalesce reloads asked for by a burst of events: at most one per delay.
function soon(name, fn, delay) {
  if (state.timers[name]) return;
  state.timers[name] = setTimeout(() => { state.timers[name] = null; fn(); }, delay || 300);
}

// ---- jobs ------------------------------------------------------------------

function filters() {
  const form = document.getElementById("filters");
  const params = new URLSearchParams();
  for (const name of ["type", "tenant", "scope", "q"]) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  const status = form.elements.status.value;
  if (status === "*") params.set("all", "true");
  else if (status) params.set("status", status);
  return params;
}

function progressBar(percent) {
  const bar = el("div", null, "bar");
  const fill = el("span");
  fill.style.width = (percent === null || percent === undefined ? 0 : percent) + "%";
  bar.appendChild(fill);
  bar.appendChild(el("em", percent === null || percent === undefined ? "" : percent.toFixed(0) + "%"));
  return bar;
}

function actionButtons(job) {
  const box = el("div", null, "actions");
  // A read-only token's actions would all be refused: none is offered.
  if (state.readOnly) return box;
  const add = (label, action) => {
    const button = el("button", label);
    button.type = "button";
    button.dataset.action = action;
    button.dataset.job = job.id;
    button.addEventListener("click", () => act(job.id, action));
    box.appendChild(button);
  };
  if (job.status === "queued" || job.status === "running") add("Pause", "pause");
  if (job.status === "paused") add("Resume", "resume");
  if (["queued", "running", "paused"].includes(job.status)) add("Cancel", "cancel");
  // A step of a task or a child job is retried as part of its whole: the
  // server refuses it (409), so the page does not offer it.
  const part = job.task_id || job.parent_id;
  if ((job.status === "failed" || job.status === "cancelled") && !part) add("Retry", "retry");
  return box;
}

function jobRow(job) {
  const row = el("tr");
  row.dataset.job = job.id;
  row.dataset.status = job.status;
  cell(row, "", "writer").appendChild(selectBox(job.id));
  const link = el("a", job.id, "job");
  link.addEventListener("click", () => showDetail(job.id));
  cell(row, "").appendChild(link);
  cell(row, job.name);
  cell(row, job.tenant);
  cell(row, job.scope || "");
  cell(row, job.status + (job.interrupted ? " (interrupted)" : ""), "status status-" + job.status);
  cell(row, job.phase || "", "phase");
  cell(row, "", "progress").appendChild(progressBar(job.percent));
  cell(row, "", "act").appendChild(actionButtons(job));
  return row;
}

// The jobs the list asks for at once (the API's default): a list this long
// may have more after it, in dispatch order.
const PAGE_SIZE = 500;
const UNFINISHED = ["queued", "running", "paused"];

// The list as last read, kept up to date by events: id -> the job's row data.
state.jobs = new Map();
state.full = false;      // the list may go on past its last row
state.reload = 0;        // counts the list's reloads (a fetch in flight from
                         // before one is dropped)
state.wanted = new Set(); // ids of jobs the list needs read (see fetchJobs)
state.holding = false;   // events wait for a reload of the list (see holdEvents)
state.held = [];
state.loads = 0;         // reads of the list in flight

function currentFilters() {
  const form = document.getElementById("filters");
  const value = (name) => form.elements[name].value.trim();
  return {
    status: form.elements.status.value, type: value("type"), tenant: value("tenant"),
    scope: value("scope"), q: value("q").toLowerCase(),
  };
}

// Whether a job belongs in the list under the filters: true, false, or null
// when the page cannot tell from what it has (a search may match the job's
// error, which an event does not carry).
function belongs(job, f) {
  if (f.status === "" && !UNFINISHED.includes(job.status)) return false;
  if (f.status && f.status !== "*" && job.status !== f.status) return false;
  if (f.type && job.name !== f.type) return false;
  if (f.tenant && job.tenant !== f.tenant) return false;
  if (f.scope && job.scope !== f.scope) return false;
  if (!f.q) return true;
  const fields = ["id", "name", "status", "phase", "tenant", "scope", "task_id", "error"];
  if (fields.some((name) => String(job[name] || "").toLowerCase().includes(f.q))) return true;
  return "error" in job ? false : null;
}

// Dispatch order, as the API lists: higher priority first, then oldest, then id.
function before(a, b) {
  if (a.priority !== b.priority) return a.priority > b.priority;
  if (a.created_at !== b.created_at) return a.created_at < b.created_at;
  return a.id < b.id;
}

function showCount() {
  const n = state.rows.size;
  document.getElementById("select-all").checked = n > 0 && state.selected.size === n;
  showSelected();
  document.getElementById("jobs-empty").hidden = n > 0;
}

// While the list is read again, the events that arrive wait, then apply to
// the list as read (those older than a row's read are dropped then).
function holdEvents() {
  state.holding = true;
}

function releaseEvents() {
  state.holding = false;
  const held = state.held;
  state.held = [];
  for (const event of held) applyToList(event);
}

async function loadJobs() {
  const reload = ++state.reload;
  holdEvents();
  state.wanted.clear();
  // This read is of the filters as they are now: a reload asked for before
  // it, and not made yet, would read the same again.
  for (const name of ["more", "jobs", "filters"]) {
    clearTimeout(state.timers[name]);
    state.timers[name] = null;
  }
  let jobs;
  state.loads += 1;
  try {
    jobs = await api("/api/jobs?" + filters().toString());
  } catch (e) {
    if (reload === state.reload && !state.timers.jobs && !state.timers.filters) releaseEvents();
    throw e;
  } finally {
    state.loads -= 1;
  }
  if (reload !== state.reload) return; // a newer reload overtook this one
  const body = document.querySelector("#jobs-table tbody");
  body.replaceChildren();
  state.rows.clear();
  state.jobs.clear();
  for (const job of jobs) {
    const row = jobRow(job);
    state.rows.set(job.id, row);
    state.jobs.set(job.id, job);
    body.appendChild(row);
  }
  state.full = jobs.length >= PAGE_SIZE;
  // A ticked job the filters no longer show is not acted on unseen.
  for (const id of state.selected) if (!state.rows.has(id)) state.selected.delete(id);
  showCount();
  // Another reload asked for meanwhile holds them on till it is made.
  if (!state.timers.jobs && !state.timers.filters) releaseEvents();
}

// Read the list again after a delay (coalesced), holding events till then.
function reloadJobs(name, delay) {
  holdEvents();
  soon(name, () => loadJobs().catch((e) => say(e.message, true)), delay);
}

function removeRow(id) {
  const row = state.rows.get(id);
  if (!row) return;
  row.remove();
  state.rows.delete(id);
  state.jobs.delete(id);
  state.selected.delete(id);
  // A full list now lacks the job after its last row: read it.
  if (state.full) soon("more", () => moreJobs().catch((e) => say(e.message, true)));
}

// Put a job's row where it belongs in the list, or take it out: one row.
function placeJob(job) {
  const fits = belongs(job, currentFilters());
  if (fits === null) { wantJob(job.id); return; }
  if (!fits) { removeRow(job.id); return; }
  const old = state.rows.get(job.id);
  if (old) {
    // The same row, its changing cells changed (its box keeps its tick).
    old.dataset.status = job.status;
    const status = old.querySelector("td.status");
    status.textContent = job.status + (job.interrupted ? " (interrupted)" : "");
    status.className = "status status-" + job.status;
    old.querySelector("td.phase").textContent = job.phase || "";
    old.querySelector("td.progress").replaceChildren(progressBar(job.percent));
    old.querySelector("td.act").replaceChildren(actionButtons(job));
    state.jobs.set(job.id, job);
    return;
  }
  // A job not in the list is placed by its order, which an event lacks.
  if (typeof job.priority !== "number") { wantJob(job.id); return; }
  // Its place: before the first row it comes before; past the last row of a
  // full list it is on a later page.
  const entries = Array.from(state.jobs.entries());
  let at = entries.findIndex(([, other]) => before(job, other));
  if (at < 0) {
    if (state.full) return;
    at = entries.length;
  }
  const row = jobRow(job);
  const body = document.querySelector("#jobs-table tbody");
  body.insertBefore(row, at < entries.length ? state.rows.get(entries[at][0]) : null);
  // state.jobs in the list's order (a Map keeps insertion order).
  entries.splice(at, 0, [job.id, job]);
  state.jobs = new Map(entries);
  state.rows.set(job.id, row);
  if (state.full && entries.length > PAGE_SIZE) {
    // The last row went on to the next page.
    const lastId = entries[entries.length - 1][0];
    state.rows.get(lastId).remove();
    state.rows.delete(lastId);
    state.jobs.delete(lastId);
    state.selected.delete(lastId);
  }
}

// Jobs an event names that the list cannot place from the event alone are
// read whole, a burst of them together (GET /api/jobs/{id} each).
function wantJob(id) {
  state.wanted.add(id);
  soon("fetch", () => fetchJobs().catch((e) => say(e.message, true)), 100);
}

async function fetchJobs() {
  const ids = Array.from(state.wanted);
  state.wanted.clear();
  const reload = state.reload;
  const jobs = await Promise.all(ids.map((id) =>
    api("/api/jobs/" + encodeURIComponent(id)).catch(() => null)));
  if (reload !== state.reload || state.tab !== "jobs") return;
  for (let i = 0; i < ids.length; i += 1) {
    if (jobs[i]) placeJob(jobs[i]); else removeRow(ids[i]);
  }
  showCount();
}

// The rows after the last one of a full list that lost rows: one page read
// from the last row on (its cursor, as the API writes one).
async function moreJobs() {
  if (!state.full || state.tab !== "jobs") return;
  const missing = PAGE_SIZE - state.rows.size;
  if (missing <= 0) return;
  const reload = state.reload;
  const params = filters();
  const last = Array.from(state.jobs.values()).pop();
  if (last) {
    let cursor;
    try {
      cursor = btoa(JSON.stringify([last.priority, last.created_at, last.id]));
    } catch (e) {
      return loadJobs(); // an id btoa cannot write: read the list again
    }
    params.set("after", cursor.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""));
  }
  params.set("limit", String(missing));
  const jobs = await api("/api/jobs?" + params.toString());
  if (reload !== state.reload) return;
  if (jobs.length < missing) state.full = false;
  const body = document.querySelector("#jobs-table tbody");
  for (const job of jobs) {
    if (state.rows.has(job.id)) continue;
    const row = jobRow(job);
    state.rows.set(job.id, row);
    state.jobs.set(job.id, job);
    body.appendChild(row);
  }
  showCount();
}

// An event changes its job's row in place: its progress, or its status
// (the row then comes, goes or stays as the filters say); a job the list
// does not hold is read (GET /api/jobs/{id}) if it may belong there.
function applyEvent(event) {
  if (state.tab === "jobs") applyToList(event);
  if (state.detail === event.job_id) {
    soon("detail", () => { if (state.detail) showDetail(state.detail, true); }, 500);
  }
  if (state.task !== null && state.task === event.task_id) {
    soon("task", () => { if (state.task !== null) showTask(state.task, true); }, 500);
  }
  if (event.kind === "status" && state.tab !== "jobs" && state.tab !== "detail") {
    const tab = state.tab;
    soon("tab", () => { if (state.tab === tab) loadTab(tab); }, 1000);
  }
}

function applyToList(event) {
  if (state.holding) { state.held.push(event); return; }
  const row = state.rows.get(event.job_id);
  const known = state.jobs.get(event.job_id);
  // An event from before the row was read (a reload overtook it) is old news.
  if (known && typeof known.updated_at === "number" && event.at < known.updated_at) return;
  const phase = event.progress && event.progress.phase ? event.progress.phase.name : null;
  if (row && row.dataset.status === event.status) {
    known.phase = phase;
    known.percent = event.percent;
    known.updated_at = event.at;
    row.querySelector("td.phase").textContent = phase || "";
    row.querySelector("td.progress").replaceChildren(progressBar(event.percent));
    return;
  }
  if (state.wanted.has(event.job_id)) return; // read soon, as of then
  const job = Object.assign({}, known || {}, {
    id: event.job_id, name: event.name, status: event.status, tenant: event.tenant,
    scope: event.scope, task_id: event.task_id, parent_id: event.parent_id,
    percent: event.percent, phase: phase, interrupted: false, updated_at: event.at,
  });
  if (known) {
    // The error of a job that was not failed is not the one it may have now.
    if (job.status !== known.status) delete job.error;
  } else if (belongs(job, currentFilters()) === false) {
    return; // not a job the list shows: nothing to read
  }
  placeJob(job);
  showCount();
}

async function act(jobId, action) {
  try {
    const answer = await post("/api/jobs/" + encodeURIComponent(jobId) + "/" + action);
    say(answer.job_id + ": " + answer.result);
    reloadJobs("jobs", 50);
    // The view may have changed by the time the reload runs.
    if (state.detail) soon("detail", () => { if (state.detail) showDetail(state.detail, true); }, 50);
  } catch (e) {
    say(e.message, true);
  }
}

// ---- job detail ------------------------------------------------------------

async function showDetail(jobId, quiet) {
  let job;
  try {
    job = await api("/api/jobs/" + encodeURIComponent(jobId));
  } catch (e) {
    if (!quiet) say(e.message, true);
    return;
  }
  state.detail = jobId;
  if (!quiet) switchTab("detail");
  document.getElementById("detail-title").textContent = job.name + " " + job.id;
  document.getElementById("detail-actions").replaceChildren(actionButtons(job));
  const fields = document.getElementById("detail-fields");
  fields.replaceChildren();
  const field = (name, value) => {
    if (value === null || value === undefined || value === "") return;
    fields.appendChild(el("dt", name));
    fields.appendChild(el("dd", value));
  };
  field("Status", job.status);
  field("Progress", job.percent === null ? "" : job.percent.toFixed(1) + "%");
  field("Phase", job.phase);
  field("Tenant", job.tenant);
  field("Scope", job.scope);
  field("Task", job.task_id);
  field("Parent", job.parent_id);
  field("Created", when(job.created_at));
  field("Updated", when(job.updated_at));
  field("Error", job.error);
  field("Waiting", job.waiting);
  field("Warnings", (job.warnings || []).join("\n"));
  const phases = document.querySelector("#detail-phases tbody");
  phases.replaceChildren();
  for (const p of job.phases || []) {
    const row = el("tr");
    cell(row, p.phase);
    cell(row, p.status, "status-" + p.status);
    cell(row, p.attempt, "num");
    cell(row, when(p.started_at));
    cell(row, took(p.started_at, p.ended_at));
    cell(row, p.errors, "num");
    phases.appendChild(row);
  }
  const errors = document.getElementById("detail-errors");
  errors.replaceChildren();
  for (const e of job.errors || []) {
    errors.appendChild(el("li", (e.path ? e.path + ": " : "") + e.message));
  }
  document.getElementById("detail-output").textContent = JSON.stringify(job.output, null, 2);
  document.getElementById("detail-input").textContent = JSON.stringify(job.input, null, 2);
  const id = encodeURIComponent(jobId);
  const [timing, checkpoints] = await Promise.all([
    api("/api/jobs/" + id + "/timing"), api("/api/jobs/" + id + "/checkpoints"),
  ]).catch((e) => { say(e.message, true); return [null, null]; });
  if (timing && state.detail === jobId) showTiming(timing);
  if (checkpoints && state.detail === jobId) showCheckpoints(checkpoints);
}

// ---- the other tabs --------------------------------------------------------

async function loadHistory() {
  const entries = await api("/api/history?limit=200");
  const body = document.querySelector("#history-table tbody");
  body.replaceChildren();
  for (const h of entries) {
    const row = el("tr");
    cell(row, when(h.finished_at));
    const link = el("a", h.id, "job");
    link.addEventListener("click", () => showDetail(h.id));
    cell(row, "").appendChild(link);
    cell(row, h.name);
    cell(row, h.tenant);
    cell(row, h.status, "status-" + h.status);
    cell(row, took(h.started_at, h.finished_at));
    cell(row, h.errors, "num");
    cell(row, h.error || "");
    body.appendChild(row);
  }
}

async function loadTasks() {
  const tasks = await api("/api/tasks");
  const body = document.querySelector("#tasks-table tbody");
  body.replaceChildren();
  for (const t of tasks) {
    const row = el("tr");
    row.dataset.task = t.id;
    const link = el("a", t.id, "job");
    link.addEventListener("click", () => showTask(t.id));
    cell(row, "").appendChild(link);
    cell(row, t.name);
    cell(row, t.tenant);
    cell(row, t.status, "status-" + t.status);
    cell(row, t.step + "/" + t.steps);
    cell(row, "").appendChild(progressBar(t.percent));
    cell(row, t.error || "");
    body.appendChild(row);
  }
}

async function loadWorkers() {
  const workers = await api("/api/workers");
  const body = document.querySelector("#workers-table tbody");
  body.replaceChildren();
  const now = Date.now() / 1000;
  for (const w of workers) {
    const row = el("tr");
    cell(row, w.id);
    cell(row, w.host);
    cell(row, w.pid, "num");
    cell(row, (now - w.heartbeat_at).toFixed(1) + " s ago");
    cell(row, w.alive ? "alive" : "stale or gone", w.alive ? "status-completed" : "status-failed");
    cell(row, w.jobs.join("\n"));
    body.appendChild(row);
  }
}

async function loadLocations() {
  const locations = await api("/api/locations");
  const body = document.querySelector("#locations-table tbody");
  body.replaceChildren();
  for (const l of locations) {
    const row = el("tr");
    cell(row, l.id, "num");
    cell(row, l.path, "path");
    cell(row, l.mode);
    cell(row, l.file_count === null ? "" : l.file_count.toLocaleString(), "num");
    cell(row, bytes(l.total_size), "num");
    cell(row, when(l.indexed_at));
    const buttons = cell(row, "", "actions");
    const thumbs = el("button", "Thumbnails");
    thumbs.type = "button";
    thumbs.dataset.thumbs = l.id;
    thumbs.addEventListener("click", () => showThumbs(l));
    buttons.appendChild(thumbs);
    if (!state.readOnly) {
      const button = el("button", "Index");
      button.type = "button";
      button.dataset.location = l.id;
      button.addEventListener("click", async () => {
        try {
          const answer = await post("/api/locations/" + l.id + "/index");
          say("queued index " + answer.job_id + " of " + l.path);
        } catch (e) {
          say(e.message, true);
        }
      });
      buttons.appendChild(button);
    }
    body.appendChild(row);
  }
}

async function loadDuplicates() {
  const summary = document.getElementById("dupes-summary");
  const groups = document.getElementById("dupes-groups");
  groups.replaceChildren();
  let report;
  try {
    report = await api("/api/duplicates");
  } catch (e) {
    summary.textContent = e.message;
    return;
  }
  summary.textContent = report.groups.length + " groups, " + report.duplicates +
    " extra copies, " + bytes(report.wasted) + " wasted (" + report.mode + ", job " +
    report.job_id + ")";
  for (const g of report.groups) {
    const box = el("div", null, "group");
    box.appendChild(el("div", g.copies.length + " copies of " + bytes(g.size) + " (" + g.key + ")"));
    const list = el("ul");
    for (const copy of g.copies) {
      list.appendChild(el("li", copy.join("\n  = "), "path"));
    }
    box.appendChild(list);
    groups.appendChild(box);
  }
}

const loaders = {
  jobs: loadJobs, history: loadHistory, tasks: loadTasks, workers: loadWorkers,
  locations: loadLocations, duplicates: loadDuplicates,
};

function loadTab(tab) {
  const load = loaders[tab];
  if (load) return load().catch((e) => say(e.message, true));
  return Promise.resolve();
}

function switchTab(tab) {
  state.tab = tab;
  if (tab !== "detail") state.detail = null;
  if (tab !== "task") state.task = null;
  if (tab !== "thumbs") state.thumbs = null;
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== "tab-" + tab;
  }
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.tab === tab);
  }
  return loadTab(tab);
}

// ---- the event stream ------------------------------------------------------

function setLive(on, why) {
  const live = document.getElementById("live");
  live.className = on ? "on" : "off";
  live.textContent = on ? "live" : why || "paused";
}

// One stream for the page. The browser reconnects a dropped stream on its
// own, sending the last id it saw (Last-Event-ID); a stream opened anew (the
// tab shown again) starts after the last id applied: nothing is missed.
function openStream() {
  if (state.source) return;
  const query = state.lastId === null ? "" : "?after=" + encodeURIComponent(state.lastId);
  const source = new EventSource("/api/events" + query);
  source.addEventListener("open", () => setLive(true));
  source.addEventListener("error", () => {
    setLive(false, "reconnecting");
    if (source.readyState === EventSource.CLOSED && state.source === source) {
      // The browser gave up reconnecting (the server answered with an
      // error, or stayed away): try again later, after the last id applied.
      state.source = null;
      setTimeout(() => { if (!document.hidden) openStream(); }, 3000);
    }
  });
  source.addEventListener("job", (message) => {
    state.lastId = message.lastEventId;
    applyEvent(JSON.parse(message.data));
  });
  source.addEventListener("gap", async () => {
    // The events after our last one were pruned: reload, follow from now.
    closeStream();
    await start();
  });
  state.source = source;
}

function closeStream() {
  if (state.source) {
    state.source.close();
    state.source = null;
  }
  setLive(false);
}

// Drop the reloads events asked for and not yet made.
function cancelReloads() {
  for (const name of ["jobs", "detail", "task", "tab"]) {
    clearTimeout(state.timers[name]);
    state.timers[name] = null;
  }
  // The events held for a reload not made apply to the list as it is.
  if (state.holding && !state.timers.filters && state.loads === 0) releaseEvents();
}

// A hidden tab holds no stream and reloads nothing; shown again, it resumes
// after the last event it applied, and those events bring it up to date.
document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    closeStream();
    cancelReloads();
  } else {
    openStream();
  }
});

async function start() {
  const session = await api("/api/session");
  document.getElementById("who").textContent =
    (session.tenant === null ? "every tenant" : "tenant " + session.tenant) +
    (session.read_only ? " (read only)" : "");
  state.readOnly = session.read_only;
  document.body.classList.toggle("read-only", session.read_only);
  // Read the data after this id, then follow from it: whatever happens in
  // between arrives as events.
  state.lastId = String(session.last_event_id);
  await loadTab(["detail", "task", "thumbs"].includes(state.tab) ? "jobs" : state.tab);
  if (!document.hidden) openStream();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => switchTab(button.dataset.tab));
  }
  document.getElementById("detail-back").addEventListener("click", () => switchTab("jobs"));
  document.getElementById("task-back").addEventListener("click", () => switchTab("tasks"));
  document.getElementById("thumbs-back").addEventListener("click", () => switchTab("locations"));
  document.getElementById("thumbs-more").addEventListener("click", () => {
    loadThumbs(true).catch((e) => say(e.message, true));
  });
  for (const button of document.querySelectorAll("#bulk button")) {
    button.addEventListener("click", () => bulkAct(button.dataset.bulk));
  }
  document.getElementById("select-all").addEventListener("change", (e) => {
    for (const id of state.rows.keys()) {
      if (e.target.checked) state.selected.add(id); else state.selected.delete(id);
    }
    for (const box of document.querySelectorAll("#jobs-table input.select")) {
      box.checked = e.target.checked;
    }
    showSelected();
  });
  // "change" too: a choice in a list does not always send "input".
  for (const kind of ["input", "change"]) {
    document.getElementById("filters").addEventListener(kind, () => {
      reloadJobs("filters", 250);
    });
  }
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  start().catch((e) => say(e.message, true));
});
