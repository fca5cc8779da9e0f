// The fleet's devices: the list (by id, a page at a time, in a group or with an attribute), one
// device (its attributes, groups and token state: never a token), registering one, rotating and
// revoking its tokens, deleting it. A token the API returns is shown once (showToken), kept nowhere.
"use strict";

// "name=value" lines to an object (the first "=" ends the name; blank lines are skipped). No
// prototype: an attribute may be called __proto__.
function parseAttributes(text, field) {
  const out = Object.create(null);
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const at = line.indexOf("=");
    const name = at < 0 ? "" : line.slice(0, at).trim();
    if (!name) throw new FieldError(field, `line ${i + 1}: write name=value`);
    if (Object.hasOwn(out, name)) throw new FieldError(field, `line ${i + 1}: ${name} is there twice`);
    out[name] = line.slice(at + 1).trim();
  });
  return out;
}

// By name (the API's order is its storage's: the shorter names first).
function attributeEntries(attributes) {
  return Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function attributeText(attributes, separator) {
  return attributeEntries(attributes).map(([name, value]) => `${name}=${value}`).join(separator);
}

// A device's row: its id (a link to its page), attributes, version and registration.
function deviceRow(d) {
  const row = el("tr");
  row.dataset.deviceId = d.device_id;
  const first = el("td");
  first.append(link(d.device_id, `#/devices/${enc(d.device_id)}`));
  row.append(first, el("td", attributeText(d.attributes, ", ") || "-"), el("td", d.version), el("td", fmtTime(d.created_at)));
  return row;
}

// ---- the list ----

// The group filter's choices: the first 1,000 groups; the one chosen stays chosen while it exists.
async function loadGroupChoices() {
  const select = $("devices-f-group_id");
  try {
    const { body } = await api("GET", "/customer/groups?limit=1000");
    const chosen = select.value;
    const options = [el("option", "any group")];
    options[0].value = "";
    for (const g of body) {
      const option = el("option", g.group_id);
      option.value = g.group_id;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = body.some((g) => g.group_id === chosen) ? chosen : "";
  } catch (e) {
    if (e.status !== 401) notice(`Could not list the groups: ${e.message}`);
  }
}

async function loadDevices() {
  const current = ask("devices");
  const params = new URLSearchParams({ limit: "50" });
  const group = $("devices-f-group_id").value;
  if (group) params.set("group_id", group);
  const attribute = $("devices-f-attribute").value.trim();
  if (attribute) params.set("attribute", attribute);
  if (state.devicesCursor) params.set("cursor", state.devicesCursor);
  clearErrors($("devices-filter"));
  try {
    const { body, next } = await api("GET", `/customer/devices?${params}`);
    if (!current()) return;
    const rows = $("devices-rows");
    rows.replaceChildren(...body.map(deviceRow));
    if (!body.length) rows.append(message(group || attribute ? "No devices match." : "No devices.", 4));
    pager("devices", next);
  } catch (e) {
    if (current() && e.status !== 401) refused("devices-", e, e.status === 404 ? "group_id" : "attribute");
  }
}

// ---- one device ----

async function loadDevice() {
  const id = state.deviceId;
  try {
    const { body } = await api("GET", `/customer/devices/${enc(id)}`);
    if (state.deviceId === id) renderDevice(body);
  } catch (e) {
    if (state.deviceId !== id || e.status === 401) return;
    notice(e.status === 404 ? `Device ${id} not found.` : `Could not read the device: ${e.message}`);
  }
}

function renderDevice(d) {
  $("device-title").textContent = `Device ${d.device_id}`;
  state.deviceVersion = d.version;
  state.deviceAttributes = Object.keys(d.attributes);
  const groups = el("dd", d.groups.length ? undefined : "none");
  d.groups.forEach((g, i) => groups.append(...(i ? [", "] : []), link(g, `#/groups/${enc(g)}`)));
  $("device-facts").replaceChildren(
    el("dt", "Registered"), el("dd", fmtTime(d.created_at)),
    el("dt", "Version"), el("dd", d.version),
    el("dt", "Groups"), groups,
    el("dt", "Token issued"), el("dd", d.token.issued_at ? fmtTime(d.token.issued_at) : "none (revoked)"),
    el("dt", "Previous token valid until"), el("dd", fmtTime(d.token.previous_valid_until)),
  );
  const rows = $("device-attributes");
  rows.replaceChildren(...attributeEntries(d.attributes).map(([name, value]) => {
    const row = el("tr");
    row.append(el("td", name), el("td", value));
    return row;
  }));
  if (!rows.children.length) rows.append(message("No attributes.", 2));
  $("att-f-attributes").value = attributeText(d.attributes, "\n");
}

// The attributes as written: the new and changed ones set, the ones no longer there removed
// (null), at the version this page read (409 when someone changed them since).
async function saveAttributes(event) {
  event.preventDefault();
  const id = state.deviceId;
  clearErrors($("attributes-form"));
  let wanted;
  try { wanted = parseAttributes($("att-f-attributes").value, "attributes"); }
  catch (e) { fieldError("att-", e.field, e.message); return; }
  const changes = Object.assign(Object.create(null), wanted);
  for (const name of state.deviceAttributes) if (!Object.hasOwn(wanted, name)) changes[name] = null;
  try {
    await api("PATCH", `/customer/devices/${enc(id)}`, { attributes: changes, version: state.deviceVersion });
    notice(`The attributes of device ${id} are saved.`);
    loadDevice();
  } catch (e) { refused("att-", e, e.status === 409 ? "attributes" : "body"); }
}

async function rotateToken(event) {
  event.preventDefault();
  const id = state.deviceId;
  clearErrors($("rotate-form"));
  const minutes = number("rot-f-previous_valid_minutes") ?? 0;
  const old = minutes ? `The old token keeps working for ${minutes} minutes.` : "The old token stops working now.";
  if (!window.confirm(`Rotate the token of device ${id}? ${old}`)) return;
  try {
    const { body } = await api("POST", `/customer/devices/${enc(id)}/token`, { previous_valid_minutes: minutes });
    notice(`Device ${id} has a new token.`);
    showToken(id, body.token);
    loadDevice();
  } catch (e) { refused("rot-", e); }
}

async function revokeTokens() {
  const id = state.deviceId;
  if (!window.confirm(`Revoke every token of device ${id}? It is refused until a rotation issues a new one.`)) return;
  hideToken();
  try {
    const { body } = await api("DELETE", `/customer/devices/${enc(id)}/token`);
    notice(`Revoked ${body.revoked} token(s) of device ${id}: "Rotate token" issues a new one.`);
    loadDevice();
  } catch (e) { if (e.status !== 401) notice(`Could not revoke: ${e.message}`); }
}

async function deleteDevice() {
  const id = state.deviceId;
  const what = "Its tokens stop working and its executions not yet finished become REMOVED.";
  if (!window.confirm(`Delete device ${id}? ${what}`)) return;
  try {
    const { body } = await api("DELETE", `/customer/devices/${enc(id)}`);
    go("#/devices", `Device ${id} deleted; ${body.removed_executions} unfinished execution(s) removed.`);
  } catch (e) { if (e.status !== 401) notice(`Could not delete: ${e.message}`); }
}

// ---- register ----

async function registerDevice(event) {
  event.preventDefault();
  const form = $("register-form");
  clearErrors(form);
  hideToken();
  let body;
  try {
    body = { device_id: $("reg-f-device_id").value.trim(), attributes: parseAttributes($("reg-f-attributes").value, "attributes") };
  } catch (e) { fieldError("reg-", e.field, e.message); return; }
  try {
    const { body: made } = await api("POST", "/customer/devices", body);
    form.reset();
    notice(`Device ${made.device_id} is registered.`);
    showToken(made.device_id, made.token);
  } catch (e) { refused("reg-", e, e.status === 409 ? "device_id" : "body"); }
}

// ---- the pages ----

function openDevices() {
  stopRefresh();
  show("devices");
  loadGroupChoices().then(loadDevices);
}

function openDevice(id) {
  stopRefresh();
  state.deviceId = id;
  $("device-title").textContent = `Device ${id}`;
  for (const node of ["device-facts", "device-attributes"]) $(node).replaceChildren();
  for (const form of ["attributes-form", "rotate-form"]) { $(form).reset(); clearErrors($(form)); }
  show("device");
  loadDevice();
}

function openRegister() {
  stopRefresh();
  show("register");
  $("reg-f-device_id").focus();
}

function wireDevices() {
  const reload = () => { state.devicesCursor = null; loadDevices(); };
  $("devices-filter").addEventListener("submit", (event) => { event.preventDefault(); reload(); });
  $("devices-f-group_id").addEventListener("change", reload);
  $("devices-next").addEventListener("click", () => { state.devicesCursor = state.devicesNext; loadDevices(); });
  $("devices-first").addEventListener("click", reload);
  $("register-form").addEventListener("submit", registerDevice);
  $("attributes-form").addEventListener("submit", saveAttributes);
  $("rotate-form").addEventListener("submit", rotateToken);
  $("revoke-tokens").addEventListener("click", revokeTokens);
  $("delete-device").addEventListener("click", deleteDevice);
  $("secret-copy").addEventListener("click", copyToken);
  $("secret-done").addEventListener("click", hideToken);
}
