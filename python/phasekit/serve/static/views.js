// The dashboard's views beyond the job list: a job's timing and
// checkpoints, a task, a location's thumbnail grid, and the selection bulk
// actions act on. Loaded with app.js (whose helpers and state it uses);
// every value from the server goes into the page as text, never as HTML.
"use strict";

// ---- a job's timing and checkpoints ----------------------------------------

function seconds(s) {
  if (s === null || s === undefined) return "";
  return s < 60 ? s.toFixed(2) + " s" : (s / 60).toFixed(1) + " min";
}

function fieldList(id, pairs) {
  const list = document.getElementById(id);
  list.replaceChildren();
  for (const [name, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    list.appendChild(el("dt", name));
    list.appendChild(el("dd", value));
  }
}

function showTiming(timing) {
  const phased = timing.phases.length > 0;
  fieldList("detail-timing-fields", [
    ["Waited", seconds(timing.waited_s)],
    ["Started", when(timing.started_at)],
    ["In phases", phased ? seconds(timing.phase_seconds) : "none: it runs as one piece"],
  ]);
  document.getElementById("detail-timing").hidden = !phased;
  const body = document.querySelector("#detail-timing tbody");
  body.replaceChildren();
  for (const p of timing.phases) {
    const row = el("tr");
    row.dataset.phase = p.phase;
    cell(row, p.phase);
    cell(row, p.attempts, "num");
    cell(row, seconds(p.seconds), "num took");
    cell(row, "").appendChild(progressBar(p.share === null ? null : p.share * 100));
    cell(row, p.status, "status-" + p.status);
    body.appendChild(row);
  }
}

function showCheckpoints(answer) {
  const newest = answer.newest;
  fieldList("detail-checkpoints", [
    ["Taken", answer.taken === null ? "" : String(answer.taken)],
    ["Newest", newest ? "#" + newest.seq : ""],
    ["Saved", newest ? when(newest.saved_at) : ""],
    ["Size", newest ? bytes(newest.bytes) : ""],
    ["In phase", newest && newest.phase ? newest.phase : ""],
    ["Error", answer.error || ""],
  ]);
  // Its contents, when the server sent them (small and plain JSON).
  const shown = newest !== null && newest.state !== null;
  const pre = document.getElementById("detail-checkpoint-state");
  pre.hidden = !shown;
  pre.textContent = shown ? JSON.stringify(newest.state, null, 2) : "";
}

// ---- task detail -----------------------------------------------------------

async function showTask(taskId, quiet) {
  let task;
  try {
    task = await api("/api/tasks/" + encodeURIComponent(taskId));
  } catch (e) {
    if (!quiet) say(e.message, true);
    return;
  }
  if (!quiet) switchTab("task");
  state.task = taskId;
  document.getElementById("task-title").textContent = task.name + " " + task.id;
  fieldList("task-fields", [
    ["Status", task.status],
    ["Step", task.step + " of " + task.steps],
    ["Progress", task.percent === null ? "" : task.percent.toFixed(1) + "%"],
    ["Tenant", task.tenant],
    ["Scope", task.scope],
    ["Created", when(task.created_at)],
    ["Updated", when(task.updated_at)],
    ["Finished", when(task.finished_at)],
    ["Error", task.error],
  ]);
  const body = document.querySelector("#task-jobs tbody");
  body.replaceChildren();
  for (const j of task.jobs) {
    const row = el("tr");
    row.dataset.job = j.id;
    cell(row, j.step, "num");
    const link = el("a", j.id, "job");
    link.addEventListener("click", () => showDetail(j.id));
    cell(row, "").appendChild(link);
    cell(row, j.name);
    cell(row, j.status, "status status-" + j.status);
    cell(row, "", "progress").appendChild(progressBar(j.percent));
    body.appendChild(row);
  }
}

// ---- a location's thumbnails -----------------------------------------------

// A page at a time; each image is fetched by the browser when it scrolls
// into view (loading="lazy"), its name shown as text beneath it.
async function loadThumbs(more) {
  const shown = state.thumbs;
  if (!shown) return;
  const params = new URLSearchParams({ limit: "60" });
  if (more && shown.next !== null) params.set("after", String(shown.next));
  const page = await api("/api/locations/" + shown.id + "/thumbnails?" + params.toString());
  if (state.thumbs !== shown) return;  // another location was opened meanwhile
  const grid = document.getElementById("thumbs-grid");
  if (!more) grid.replaceChildren();
  for (const item of page.items) {
    const figure = el("figure", null, "thumb");
    figure.dataset.entry = item.entry_id;
    figure.title = item.path;
    const img = el("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = item.name;
    img.src = item.url;
    figure.appendChild(img);
    figure.appendChild(el("figcaption", item.name));
    grid.appendChild(figure);
  }
  shown.next = page.next;
  document.getElementById("thumbs-more").hidden = page.next === null;
  document.getElementById("thumbs-empty").hidden = grid.childElementCount > 0 || page.next !== null;
}

function showThumbs(location) {
  state.thumbs = { id: location.id, next: null };
  switchTab("thumbs");
  document.getElementById("thumbs-title").textContent = "Thumbnails of " + location.path;
  return loadThumbs(false).catch((e) => say(e.message, true));
}

// ---- bulk actions ------------------------------------------------------------

function selectBox(jobId) {
  const box = el("input", null, "select");
  box.type = "checkbox";
  box.dataset.job = jobId;
  box.checked = state.selected.has(jobId);
  box.setAttribute("aria-label", "select job " + jobId);
  box.addEventListener("change", () => {
    if (box.checked) state.selected.add(jobId); else state.selected.delete(jobId);
    showSelected();
  });
  return box;
}

function showSelected() {
  const n = state.selected.size;
  document.getElementById("bulk-count").textContent = n ? n + " selected" : "";
  for (const button of document.querySelectorAll("#bulk button")) button.disabled = n === 0;
}

// One action on every ticked job; the answer says what happened to each.
async function bulkAct(action) {
  const ids = Array.from(state.selected);
  if (!ids.length) return;
  try {
    const answer = await post("/api/jobs/bulk", { action: action, ids: ids });
    const refused = answer.results.filter((r) => !r.ok);
    say(action + ": " + answer.done + " done" + (refused.length ? ", " + refused.length +
      " refused (" + refused.map((r) => r.job_id + ": " + r.message).join("; ") + ")" : ""),
    refused.length > 0);
    state.selected.clear();
    reloadJobs("jobs", 50);
  } catch (e) {
    say(e.message, true);
  }
}
