// The job templates: the list, one template's page (its settings, its document with its
// placeholders as written), creating and deleting one; and the create-job form's template choice:
// the template's settings and one input per parameter of its document.
"use strict";

// ---- what a template (or a job) holds, in words ----

function presignedText(config) {
  if (!config) return "-";
  return `valid ${config.expires_in_sec} seconds${config.role_arn ? ` (role ${config.role_arn})` : ""}`;
}

function rolloutText(rollout) {
  if (!rollout) return "not paced";
  if (!rollout.exponential_rate && rollout.maximum_per_minute) return `${rollout.maximum_per_minute} a minute`;
  return JSON.stringify(rollout);
}

function templateFacts(t) {
  const retry = (t.retry || []).map((r) => `${r.number_of_retries} on ${r.failure_type}`);
  const abort = (t.abort || []).map((a) =>
    `${a.action} when ${a.threshold_percentage}% ${a.failure_type} after ${a.min_number_of_executed_things} finished`);
  return [
    ["Document type", t.document_type],
    ["Parameters", t.parameters.length ? t.parameters.join(", ") : "none"],
    ["Description", t.description || "-"],
    ["Timeout", t.timeout_minutes ? `${t.timeout_minutes} minutes in progress` : "none"],
    ["Retry", retry.length ? retry.join(", ") : "none"],
    ["Rollout", rolloutText(t.rollout)],
    ["Abort", abort.length ? abort.join("; ") : "none"],
    ["Presigned URLs", presignedText(t.presigned_url_config)],
    ["Created", fmtTime(t.created_at)],
  ];
}

function renderFacts(node, facts) {
  node.replaceChildren(...facts.flatMap(([name, value]) => [el("dt", name), el("dd", value)]));
}

function documentText(t) {
  return JSON.stringify({ type: t.document_type, params: t.document_params }, null, 2);
}

// ---- the list ----

async function loadTemplates() {
  const current = ask("templates");
  const params = new URLSearchParams({ limit: "50" });
  if (state.templatesCursor) params.set("cursor", state.templatesCursor);
  try {
    const { body, next } = await api("GET", `/customer/job-templates?${params}`);
    if (!current()) return;
    const rows = $("templates-rows");
    rows.replaceChildren(...body.map((t) => {
      const row = el("tr");
      row.dataset.templateId = t.template_id;
      const first = el("td");
      first.append(link(t.template_id, `#/templates/${enc(t.template_id)}`));
      row.append(first, el("td", t.document_type), el("td", t.parameters.join(", ") || "-"),
        el("td", t.description || "-"), el("td", fmtTime(t.created_at)));
      return row;
    }));
    if (!body.length) rows.append(message("No job templates.", 5));
    pager("templates", next);
  } catch (e) {
    if (current() && e.status !== 401) notice(`Could not list the templates: ${e.message}`);
  }
}

function templateBody() {
  const body = { template_id: $("tpl-f-template_id").value.trim(), document_type: $("tpl-f-document_type").value };
  let params;
  try { params = JSON.parse($("tpl-f-document_params").value || "{}"); }
  catch (e) { throw new FieldError("document_params", "not JSON: write a JSON object"); }
  if (params === null || typeof params !== "object" || Array.isArray(params)) {
    throw new FieldError("document_params", "write a JSON object: {\"name\": value, ...}");
  }
  body.document_params = params;
  if (number("tpl-f-timeout_minutes") !== null) body.timeout_minutes = number("tpl-f-timeout_minutes");
  if (number("tpl-f-presigned_url_config") !== null) {
    body.presigned_url_config = { expires_in_sec: number("tpl-f-presigned_url_config") };
  }
  if ($("tpl-f-description").value.trim()) body.description = $("tpl-f-description").value.trim();
  return body;
}

async function createTemplate(event) {
  event.preventDefault();
  const form = $("template-form");
  clearErrors(form);
  let body;
  try { body = templateBody(); } catch (e) { fieldError("tpl-", e.field, e.message); return; }
  try {
    const { body: created } = await api("POST", "/customer/job-templates", body);
    form.reset();
    const names = created.parameters.length ? `: each job gives ${created.parameters.join(", ")}` : "";
    go(`#/templates/${enc(created.template_id)}`, `Template ${created.template_id} created${names}.`);
  } catch (e) { refused("tpl-", e, e.status === 409 ? "template_id" : "document_params"); }
}

// ---- one template ----

async function loadTemplate() {
  const id = state.templateId;
  try {
    const { body: t } = await api("GET", `/customer/job-templates/${enc(id)}`);
    if (state.templateId !== id) return;
    $("template-title").textContent = `Template ${t.template_id}`;
    renderFacts($("template-facts"), templateFacts(t));
    $("template-document").textContent = documentText(t);
  } catch (e) {
    if (state.templateId !== id || e.status === 401) return;
    notice(e.status === 404 ? `Template ${id} not found.` : `Could not read the template: ${e.message}`);
  }
}

async function deleteTemplate() {
  const id = state.templateId;
  if (!window.confirm(`Delete template ${id}? The jobs created from it keep their document and settings.`)) return;
  try {
    await api("DELETE", `/customer/job-templates/${enc(id)}`);
    go("#/templates", `Template ${id} deleted.`);
  } catch (e) { if (e.status !== 401) notice(`Could not delete: ${e.message}`); }
}

// ---- the create-job form's choice ----

// The templates to choose from (every page, up to 5,000 of them), `chosen` chosen.
async function loadTemplateChoices(chosen) {
  const current = ask("template-choices");
  const select = $("f-template_id");
  const found = [];
  let cursor = null;
  try {
    do {
      const params = new URLSearchParams({ limit: "250" });
      if (cursor) params.set("cursor", cursor);
      const { body, next } = await api("GET", `/customer/job-templates?${params}`);
      found.push(...body.map((t) => t.template_id));
      cursor = next;
    } while (cursor && found.length < 5000);
  } catch (e) {
    if (current() && e.status !== 401) notice(`Could not list the templates: ${e.message}`);
  }
  if (!current()) return;
  if (chosen && !found.includes(chosen)) found.unshift(chosen); // asked for by name: the API says if it exists
  const options = found.map((id) => { const option = el("option", id); option.value = id; return option; });
  select.replaceChildren(select.options[0], ...options);
  select.value = chosen || "";
  chooseTemplate();
}

// The chosen template's settings and an input per parameter; the document's fields optional.
async function chooseTemplate() {
  const current = ask("template-choice");
  const id = $("f-template_id").value;
  const params = $("f-document_params");
  $("document-optional").hidden = !id;
  $("f-document_type").required = !id;
  if (id && params.value.trim() === "{}") params.value = "";
  if (!id && params.value.trim() === "") params.value = "{}";
  $("new-template").hidden = true;
  $("new-template-parameters").replaceChildren();
  if (!id) return;
  try {
    const { body: t } = await api("GET", `/customer/job-templates/${enc(id)}`);
    if (!current()) return;
    renderFacts($("new-template-facts"), templateFacts(t));
    $("new-template-document").textContent = documentText(t);
    $("new-template-parameters").replaceChildren(...t.parameters.flatMap((name) => {
      const label = el("label", `Parameter ${name}`);
      label.htmlFor = `f-param-${name}`;
      const input = el("input");
      input.id = `f-param-${name}`;
      input.dataset.parameter = name;
      input.required = true;
      input.spellcheck = false;
      return [label, input];
    }));
    $("new-template").hidden = false;
  } catch (e) {
    if (current() && e.status !== 401) {
      fieldError("", "template_id", e.status === 404 ? `Template ${id} not found.` : e.message);
    }
  }
}

// What the create-job form's body takes from the template choice (none: nothing).
function templateChoice(body) {
  const id = $("f-template_id").value;
  if (!id) return;
  body.template_id = id;
  const values = {};
  for (const input of $("new-template-parameters").querySelectorAll("input[data-parameter]")) {
    if (input.value !== "") values[input.dataset.parameter] = input.value; // a missing one: the API says which
  }
  if (Object.keys(values).length) body.document_parameters = values;
}

// Where the create-job form shows a refusal without details: beside the template or its
// parameters when it is about them, atop the form otherwise.
function templateRefusal(error) {
  if (/^document_parameters/.test(error.message)) return "document_parameters";
  if (/job template/.test(error.message)) return "template_id";
  return undefined;
}

// ---- the pages ----

function openTemplates() {
  stopRefresh();
  show("templates");
  loadTemplates();
}

function openTemplate(id) {
  stopRefresh();
  state.templateId = id;
  $("template-title").textContent = `Template ${id}`;
  $("template-use").href = `#/new/${enc(id)}`;
  for (const node of ["template-facts", "template-document"]) $(node).replaceChildren();
  show("template");
  loadTemplate();
}

function wireTemplates() {
  $("template-form").addEventListener("submit", createTemplate);
  $("templates-next").addEventListener("click", () => { state.templatesCursor = state.templatesNext; loadTemplates(); });
  $("templates-first").addEventListener("click", () => { state.templatesCursor = null; loadTemplates(); });
  $("delete-template").addEventListener("click", deleteTemplate);
  $("f-template_id").addEventListener("change", chooseTemplate);
}
