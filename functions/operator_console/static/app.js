// The operator console: the operator API, called with the operator's JWT, shown as text.
// Every value from the API goes into the page through textContent, never as markup.
"use strict";

const TOKEN_KEY = "iot-jobs.operator-token"; // sessionStorage: this tab only, never in a URL
const REFRESH_MS = 3000;
// The bar's segments, in this order; each the count of executions in that status.
const SEGMENTS = [
  ["SUCCEEDED", "succeeded"], ["FAILED", "failed"], ["REJECTED", "rejected"], ["TIMED_OUT", "timed out"],
  ["CANCELED", "canceled"], ["IN_PROGRESS", "in progress"], ["QUEUED", "queued"], ["UNRELEASED", "not yet released"],
];

const $ = (id) => document.getElementById(id);
// The page shown (a cursor: null is the first page) and the next page's cursor, of each list.
const state = { listCursor: null, listNext: null, jobId: null, execCursor: null, execNext: null, timer: null };

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// A table row of one cell across the table, saying why it is empty.
function message(text, columns) {
  const row = el("tr");
  const cell = el("td", text);
  cell.colSpan = columns;
  row.append(cell);
  return row;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function notice(text) { $("notice").textContent = text || ""; }

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let parsed = null;
  try { parsed = await response.json(); } catch (e) { parsed = null; }
  if (response.status === 401) { signOut("The token was refused or has expired: sign in again."); }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return { body: parsed, next: response.headers.get("X-Next-Cursor") };
}

function show(section) {
  for (const id of ["sign-in", "jobs", "job", "new"]) $(id).hidden = id !== section;
  $("sign-out").hidden = section === "sign-in";
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopRefresh();
  show("sign-in");
  notice(message || "");
}

function stopRefresh() { if (state.timer) clearInterval(state.timer); state.timer = null; }

function every(fn) {
  stopRefresh();
  fn();
  state.timer = setInterval(fn, REFRESH_MS);
}

function fmtTime(iso) { return iso ? new Date(iso).toLocaleString() : "-"; }

function target(job) {
  if (job.target_all) return "every device";
  if (job.target_group_id) return `group ${job.target_group_id}`;
  return `device ${job.target_device_id}`;
}

// A stacked bar of a job's counts: one segment per status, its width its share.
function bar(counts, container) {
  const node = container || el("div", undefined, "bar");
  node.replaceChildren();
  const total = SEGMENTS.reduce((sum, [status]) => sum + (counts[status] || 0), 0);
  const parts = [];
  for (const [status, label] of SEGMENTS) {
    const n = counts[status] || 0;
    if (!n) continue;
    const segment = el("span", undefined, `segment s-${status.toLowerCase()}`);
    segment.style.width = `${(100 * n) / total}%`; // CSSOM, which the CSP allows; no style attribute markup
    segment.dataset.status = status;
    segment.dataset.count = String(n);
    segment.title = `${label}: ${n}`;
    node.append(segment);
    parts.push(`${label} ${n}`);
  }
  node.setAttribute("role", "img");
  node.setAttribute("aria-label", total ? `${total} executions: ${parts.join(", ")}` : "no executions");
  return node;
}

function legend() {
  const node = $("legend");
  node.replaceChildren();
  for (const [status, label] of SEGMENTS) {
    const key = el("span", label, "key");
    key.prepend(el("span", undefined, `swatch s-${status.toLowerCase()}`));
    node.append(key);
  }
}

// ---- the jobs list ----

async function loadJobs() {
  const params = new URLSearchParams({ limit: "50" });
  const status = $("jobs-status").value;
  if (status) params.set("status", status);
  if (state.listCursor) params.set("cursor", state.listCursor);
  try {
    const { body, next } = await api("GET", `/customer/jobs?${params}`);
    renderJobs(body);
    state.listNext = next;
    $("jobs-older").disabled = !next;
    $("jobs-newer").disabled = !state.listCursor;
    notice("");
  } catch (e) {
    if (e.status !== 401) notice(`Could not list jobs: ${e.message}`);
  }
}

function renderJobs(jobs) {
  const rows = $("jobs-rows");
  const existing = new Map([...rows.children].map((row) => [row.dataset.jobId, row]));
  const wanted = [];
  for (const job of jobs) {
    let row = existing.get(job.job_id);
    if (!row) {
      row = el("tr");
      row.dataset.jobId = job.job_id;
      const link = el("a", job.job_id);
      link.href = `#/jobs/${encodeURIComponent(job.job_id)}`;
      const first = el("td");
      first.append(link);
      row.append(first, el("td"), el("td"), el("td"), el("td"), el("td"));
    }
    const cells = row.children;
    cells[1].textContent = job.document_type;
    cells[2].textContent = target(job);
    cells[3].textContent = job.status;
    cells[4].textContent = fmtTime(job.created_at);
    cells[5].replaceChildren(bar(job.counts));
    wanted.push(row);
  }
  rows.replaceChildren(...wanted); // the same row nodes, in order: focus and selection stay put
  if (!jobs.length) rows.append(message("No jobs.", 6));
}

// ---- one job ----

async function loadJob() {
  const id = state.jobId;
  const params = new URLSearchParams({ executions_limit: "50" });
  const status = $("executions-status").value;
  if (status) params.set("executions_status", status);
  if (state.execCursor) params.set("cursor", state.execCursor);
  try {
    const { body: job } = await api("GET", `/customer/jobs/${encodeURIComponent(id)}?${params}`);
    if (state.jobId !== id) return;
    renderJob(job);
    notice("");
  } catch (e) {
    if (e.status === 404) { notice(`Job ${id} not found.`); stopRefresh(); }
    else if (e.status !== 401) notice(`Could not read the job: ${e.message}`);
  }
}

function renderJob(job) {
  $("job-title").textContent = `Job ${job.job_id}`;
  bar(job.counts, $("job-bar"));
  const facts = $("job-facts");
  facts.replaceChildren();
  const p = job.progress || {};
  for (const [name, value] of [
    ["Status", job.status], ["Target", target(job)], ["Created", `${fmtTime(job.created_at)} by ${job.created_by || "-"}`],
    ["Expires", fmtTime(job.expires_at)], ["Description", job.description || "-"],
    ["Released", `${p.released} released, ${p.unreleased} not yet`],
    ["Rate", p.rate_per_minute ? `${p.rate_per_minute} a minute` : "not paced"],
    ["Next release", fmtTime(p.next_release_at)], ["Stopped", p.stop_reason ? `${p.stop_reason} (${fmtTime(p.stopped_at)})` : "-"],
  ]) {
    facts.append(el("dt", name), el("dd", value));
  }
  const counts = $("job-counts");
  counts.replaceChildren();
  for (const [status, label] of SEGMENTS) {
    const row = el("tr");
    row.append(el("th", label), el("td", job.counts[status] || 0));
    row.firstChild.scope = "row";
    counts.append(row);
  }
  $("job-document").textContent = JSON.stringify({ type: job.document_type, params: job.document_params }, null, 2);
  $("job-settings").textContent = JSON.stringify(
    { rollout: job.rollout, abort: job.abort, scheduling: job.scheduling, timeout_minutes: job.timeout_minutes, retry: job.retry },
    null, 2,
  );
  const ended = job.status === "COMPLETED" || job.status === "CANCELED";
  $("cancel-job").disabled = ended;
  $("force-cancel-job").disabled = ended;
  const rows = $("executions-rows");
  rows.replaceChildren();
  for (const e of job.executions) {
    const row = el("tr");
    const action = el("td");
    if (["UNRELEASED", "QUEUED", "IN_PROGRESS"].includes(e.status)) {
      const button = el("button", "Cancel");
      button.type = "button";
      button.setAttribute("aria-label", `Cancel the execution of ${e.device_id}`);
      button.addEventListener("click", () => cancelExecution(job.job_id, e.device_id, e.status === "IN_PROGRESS"));
      action.append(button);
    }
    row.append(el("td", e.device_id), el("td", e.status), el("td", e.execution_number), el("td", e.attempt),
      el("td", fmtTime(e.last_updated_at)), el("td", e.status_details ? JSON.stringify(e.status_details) : "-"), action);
    rows.append(row);
  }
  if (!job.executions.length) rows.append(message("No executions on this page.", 7));
  state.execNext = job.next_cursor;
  $("executions-next").disabled = !job.next_cursor;
  $("executions-first").disabled = !state.execCursor;
}

async function cancelJob(force) {
  const id = state.jobId;
  const what = force ? "Force cancel" : "Cancel";
  if (!window.confirm(`${what} job ${id}?${force ? " Executions in progress end too." : ""}`)) return;
  try {
    await api("DELETE", `/customer/jobs/${encodeURIComponent(id)}?force=${force}`);
    notice(`Job ${id} canceled.`);
    loadJob();
  } catch (e) { notice(`Could not cancel: ${e.message}`); }
}

async function cancelExecution(jobId, deviceId, force) {
  if (!window.confirm(`Cancel the execution of job ${jobId} on ${deviceId}?`)) return;
  try {
    await api("DELETE", `/customer/jobs/${encodeURIComponent(jobId)}/executions/${encodeURIComponent(deviceId)}?force=${force}`);
    notice(`The execution on ${deviceId} is canceled.`);
    loadJob();
  } catch (e) { notice(`Could not cancel the execution: ${e.message}`); }
}

// ---- create ----

function number(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

function when(id) {
  const value = $(id).value;
  return value ? new Date(value).toISOString() : null;
}

function createBody() {
  const body = { document_type: $("f-document_type").value };
  const kind = document.querySelector("input[name=target]:checked").value;
  const where = $("f-target").value.trim();
  if (kind === "device") body.target_device_id = where;
  else if (kind === "group") body.target_group_id = where;
  else body.target_all = true;
  try { body.document_params = JSON.parse($("f-document_params").value || "{}"); }
  catch (e) { throw new FieldError("document_params", "not JSON: write a JSON object"); }
  if ($("f-job_id").value.trim()) body.job_id = $("f-job_id").value.trim();
  if ($("f-description").value.trim()) body.description = $("f-description").value.trim();
  body.expires_in_hours = number("f-expires_in_hours");
  if (number("f-timeout_minutes") !== null) body.timeout_minutes = number("f-timeout_minutes");
  if (number("f-retries") !== null) body.retry = [{ failure_type: "FAILED", number_of_retries: number("f-retries") }];
  if (number("f-rate") !== null) body.rollout = { maximum_per_minute: number("f-rate") };
  if (number("f-abort_threshold") !== null) {
    body.abort = [{ failure_type: "ALL", action: "CANCEL", threshold_percentage: number("f-abort_threshold"),
      min_number_of_executed_things: number("f-abort_min") }];
  }
  const scheduling = { start_time: when("f-start_time"), end_time: when("f-end_time"), end_behavior: $("f-end_behavior").value || null };
  if (scheduling.start_time || scheduling.end_time || scheduling.end_behavior) body.scheduling = scheduling;
  return body;
}

class FieldError extends Error {
  constructor(field, message) { super(message); this.field = field; }
}

function clearErrors() {
  for (const node of document.querySelectorAll("#new-form .error")) node.textContent = "";
  for (const node of document.querySelectorAll("#new-form [aria-invalid]")) node.removeAttribute("aria-invalid");
}

function fieldError(field, message) {
  const slot = $(`error-${field}`) || $("error-body");
  slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
  const input = $(`f-${field}`);
  if (input) { input.setAttribute("aria-invalid", "true"); input.setAttribute("aria-describedby", slot.id); }
}

async function createJob(event) {
  event.preventDefault();
  clearErrors();
  let body;
  try { body = createBody(); } catch (e) { fieldError(e.field, e.message); return; }
  try {
    const { body: created } = await api("POST", "/customer/jobs", body);
    notice(`Job ${created.job_id} created for ${created.execution_count} devices.`);
    location.hash = `#/jobs/${encodeURIComponent(created.job_id)}`;
  } catch (e) {
    const details = (e.body && e.body.details) || [];
    if (!details.length) { fieldError("body", e.message); return; }
    for (const d of details) {
      const loc = (d.loc || []).filter((part) => part !== "body");
      fieldError(loc.length ? String(loc[0]) : "body", `${d.msg}${loc.length > 1 ? ` (${loc.slice(1).join(".")})` : ""}`);
    }
  }
}

// ---- routing ----

function route() {
  if (!token()) { show("sign-in"); $("token").focus(); return; }
  const hash = location.hash || "#/jobs";
  const job = hash.match(/^#\/jobs\/(.+)$/);
  if (job) {
    const id = decodeURIComponent(job[1]);
    if (state.jobId !== id) { state.jobId = id; state.execCursor = null; }
    show("job");
    every(loadJob);
  } else if (hash === "#/new") {
    stopRefresh();
    state.jobId = null;
    show("new");
  } else {
    state.jobId = null;
    show("jobs");
    every(loadJobs);
  }
}

function start() {
  legend();
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    notice("");
    route();
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("jobs-status").addEventListener("change", () => { state.listCursor = null; loadJobs(); });
  $("jobs-older").addEventListener("click", () => { state.listCursor = state.listNext; loadJobs(); });
  $("jobs-newer").addEventListener("click", () => { state.listCursor = null; loadJobs(); });
  $("executions-status").addEventListener("change", () => { state.execCursor = null; loadJob(); });
  $("executions-next").addEventListener("click", () => { state.execCursor = state.execNext; loadJob(); });
  $("executions-first").addEventListener("click", () => { state.execCursor = null; loadJob(); });
  $("cancel-job").addEventListener("click", () => cancelJob(false));
  $("force-cancel-job").addEventListener("click", () => cancelJob(true));
  $("new-form").addEventListener("submit", createJob);
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", start);
