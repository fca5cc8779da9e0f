// The operator console's shared part: the operator API called with the operator's JWT, the page's
// sections, notices, bars and form errors. Loaded first; jobs.js, devices.js, groups.js,
// templates.js and app.js (the routes) use what it defines. Every value from the API goes into
// the page through textContent, never as markup.
"use strict";

const TOKEN_KEY = "iot-jobs.operator-token"; // sessionStorage: this tab only, never in a URL
const REFRESH_MS = 3000;
// The bar's segments, in this order; each the count of executions in that status.
const SEGMENTS = [
  ["SUCCEEDED", "succeeded"], ["FAILED", "failed"], ["REJECTED", "rejected"], ["TIMED_OUT", "timed out"],
  ["CANCELED", "canceled"], ["REMOVED", "removed"], ["IN_PROGRESS", "in progress"], ["QUEUED", "queued"],
  ["UNRELEASED", "not yet released"],
];
// The page's sections, one shown at a time, and the navigation link each belongs to.
const SECTIONS = {
  "sign-in": null, jobs: "nav-jobs", job: "nav-jobs", new: "nav-new",
  devices: "nav-devices", device: "nav-devices", register: "nav-devices", groups: "nav-groups", group: "nav-groups",
  templates: "nav-templates", template: "nav-templates",
};

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent; // an id in a path or a hash
// What each page shows: a list's page (a cursor: null is the first) and its next page's cursor,
// the job, device, group or template open.
const state = {
  listCursor: null, listNext: null, jobId: null, execCursor: null, execNext: null, timer: null,
  devicesCursor: null, devicesNext: null, deviceId: null, deviceVersion: null, deviceAttributes: [],
  groupsCursor: null, groupsNext: null, groupId: null, membersCursor: null, membersNext: null,
  templatesCursor: null, templatesNext: null, templateId: null,
};

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

function link(text, hash) {
  const node = el("a", text);
  node.href = hash;
  return node;
}

function button(text, label, onClick) {
  const node = el("button", text);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  node.addEventListener("click", onClick);
  return node;
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
  return { body: parsed, next: response.headers.get("X-Next-Cursor"), status: response.status };
}

// ask("devices") before a request, then current() after it: false when another of the same kind
// was asked since (a newer filter or page), whose answer is the one to show.
const asked = {};
function ask(kind) {
  const n = (asked[kind] || 0) + 1;
  asked[kind] = n;
  return () => asked[kind] === n;
}

function show(section) {
  for (const id of Object.keys(SECTIONS)) $(id).hidden = id !== section;
  for (const nav of document.querySelectorAll("header nav a")) {
    if (nav.id === SECTIONS[section]) nav.setAttribute("aria-current", "page");
    else nav.removeAttribute("aria-current");
  }
  $("sign-out").hidden = section === "sign-in";
}

function signOut(text) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopRefresh();
  hideToken();
  show("sign-in");
  notice(text || "");
}

function stopRefresh() { if (state.timer) clearInterval(state.timer); state.timer = null; }

function every(fn) {
  stopRefresh();
  fn();
  state.timer = setInterval(fn, REFRESH_MS);
}

function fmtTime(iso) { return iso ? new Date(iso).toLocaleString() : "-"; }

// A list's buttons: the first page, and the next one when the API gave its cursor.
function pager(kind, next) {
  state[`${kind}Next`] = next;
  $(`${kind}-next`).disabled = !next;
  $(`${kind}-first`).disabled = !state[`${kind}Cursor`];
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

// ---- forms: a field is `${prefix}f-${name}`, what the API says of it `${prefix}error-${name}` ----

class FieldError extends Error {
  constructor(field, text) { super(text); this.field = field; }
}

function number(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

function clearErrors(form) {
  for (const node of form.querySelectorAll(".error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

function fieldError(prefix, field, text) {
  const slot = $(`${prefix}error-${field}`) || $(`${prefix}error-body`);
  slot.textContent = slot.textContent ? `${slot.textContent} ${text}` : text;
  const input = $(`${prefix}f-${field}`);
  if (input) { input.setAttribute("aria-invalid", "true"); input.setAttribute("aria-describedby", slot.id); }
}

// What the API refused, beside the field each detail names (in the body, the path or the query);
// a refusal without details (a conflict, a missing device) beside `field`, or atop the form.
function refused(prefix, error, field) {
  const details = (error.body && error.body.details) || [];
  if (!details.length) { fieldError(prefix, field || "body", error.message); return; }
  for (const d of details) {
    const loc = (d.loc || []).filter((part) => !["body", "path", "query"].includes(part));
    fieldError(prefix, loc.length ? String(loc[0]) : "body", `${d.msg}${loc.length > 1 ? ` (${loc.slice(1).join(".")})` : ""}`);
  }
}

// ---- a device's token, shown once: kept in the page until "Done" or another page, nowhere else ----

function showToken(deviceId, value) {
  $("secret-title").textContent = `The token of device ${deviceId}`;
  $("secret-token").textContent = value;
  $("secret").hidden = false;
  $("secret-title").focus();
}

function hideToken() {
  $("secret-token").textContent = "";
  $("secret-title").textContent = "";
  $("secret").hidden = true;
}

async function copyToken() {
  try {
    await navigator.clipboard.writeText($("secret-token").textContent);
    notice("The token is copied.");
  } catch (e) {
    notice("Could not copy: select the token and copy it.");
  }
}
