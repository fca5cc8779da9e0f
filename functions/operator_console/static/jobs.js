// The jobs: the list with a bar per job, one job with its executions, and creating one (from a
// template too: templates.js holds the form's template choice).
"use strict";

function target(job) {
  const follows = job.target_selection === "CONTINUOUS" ? " (continuous)" : "";
  const t = job.targets;  // a job's page has them all; a list row has the single-target fields
  if (t && (t.device_ids.length + t.group_ids.length > 1)) {
    const parts = [];
    if (t.device_ids.length) parts.push(`devices ${t.device_ids.join(", ")}`);
    if (t.group_ids.length) parts.push(`groups ${t.group_ids.join(", ")}`);
    return parts.join("; ") + follows;
  }
  if (job.target_all) return "every device" + follows;
  if (job.target_group_id) return `group ${job.target_group_id}` + follows;
  if (job.target_device_id) return `device ${job.target_device_id}` + follows;
  return "several devices and groups" + follows;
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
      const first = el("td");
      first.append(link(job.job_id, `#/jobs/${encodeURIComponent(job.job_id)}`));
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
    ["Status", job.status], ["Target", target(job)],
    ["Selection", job.target_selection === "CONTINUOUS"
      ? "continuous: a device that joins a target gets it, one that leaves before it started is removed"
      : "snapshot: the devices targeted at its creation"],
    ["Created", `${fmtTime(job.created_at)} by ${job.created_by || "-"}`],
    ["Expires", fmtTime(job.expires_at)], ["Description", job.description || "-"],
    ["Released", `${p.released} released, ${p.unreleased} not yet`],
    ["Rate", p.rate_per_minute ? `${p.rate_per_minute} a minute` : "not paced"],
    ["Next release", fmtTime(p.next_release_at)], ["Stopped", p.stop_reason ? `${p.stop_reason} (${fmtTime(p.stopped_at)})` : "-"],
    ...(job.presigned_url_config ? [["Presigned URLs", presignedText(job.presigned_url_config)]] : []),
  ]) {
    facts.append(el("dt", name), el("dd", value));
  }
  if (job.template_id) { // a link: the template may be gone since, its page then says so
    const dd = el("dd");
    dd.append(link(job.template_id, `#/templates/${enc(job.template_id)}`));
    facts.append(el("dt", "Template"), dd);
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
    { rollout: job.rollout, abort: job.abort, scheduling: job.scheduling, timeout_minutes: job.timeout_minutes, retry: job.retry,
      presigned_url_config: job.presigned_url_config },
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
      action.append(button("Cancel", `Cancel the execution of ${e.device_id}`,
        () => cancelExecution(job.job_id, e.device_id, e.status === "IN_PROGRESS")));
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

function when(id) {
  const value = $(id).value;
  return value ? new Date(value).toISOString() : null;
}

// From a template, the document's fields are optional: empty, the template's are used.
function createBody() {
  const body = {};
  const fromTemplate = Boolean($("f-template_id").value);
  if (!fromTemplate || $("f-document_type").value.trim()) body.document_type = $("f-document_type").value;
  templateChoice(body);
  const kind = document.querySelector("input[name=target]:checked").value;
  const where = $("f-target").value.trim();
  if (kind === "device") body.target_device_id = where;
  else if (kind === "group") body.target_group_id = where;
  else body.target_all = true;
  if ($("f-continuous").checked) body.target_selection = "CONTINUOUS";
  if (!fromTemplate || $("f-document_params").value.trim()) {
    try { body.document_params = JSON.parse($("f-document_params").value || "{}"); }
    catch (e) { throw new FieldError("document_params", "not JSON: write a JSON object"); }
  }
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

async function createJob(event) {
  event.preventDefault();
  clearErrors($("new-form"));
  let body;
  try { body = createBody(); } catch (e) { fieldError("", e.field, e.message); return; }
  try {
    const { body: created } = await api("POST", "/customer/jobs", body);
    go(`#/jobs/${encodeURIComponent(created.job_id)}`, `Job ${created.job_id} created for ${created.execution_count} devices.`);
  } catch (e) { refused("", e, templateRefusal(e)); }
}


// ---- the pages ----

function openJobs() { show("jobs"); every(loadJobs); }

function openJob(id) {
  state.jobId = id;
  state.execCursor = null;
  show("job");
  every(loadJob);
}

// #/new/TEMPLATE: the form with that template chosen.
function openNewJob(templateId) {
  stopRefresh();
  show("new");
  loadTemplateChoices(templateId || $("f-template_id").value);
}

function wireJobs() {
  legend();
  $("jobs-status").addEventListener("change", () => { state.listCursor = null; loadJobs(); });
  $("jobs-older").addEventListener("click", () => { state.listCursor = state.listNext; loadJobs(); });
  $("jobs-newer").addEventListener("click", () => { state.listCursor = null; loadJobs(); });
  $("executions-status").addEventListener("change", () => { state.execCursor = null; loadJob(); });
  $("executions-next").addEventListener("click", () => { state.execCursor = state.execNext; loadJob(); });
  $("executions-first").addEventListener("click", () => { state.execCursor = null; loadJob(); });
  $("cancel-job").addEventListener("click", () => cancelJob(false));
  $("force-cancel-job").addEventListener("click", () => cancelJob(true));
  $("new-form").addEventListener("submit", createJob);
}
