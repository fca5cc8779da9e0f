// The fleet's groups: the list with their device counts, creating one, a group's page (its
// description, its members: the devices list in that group), adding and removing members, and
// deleting it.
"use strict";

// ---- the list ----

async function loadGroups() {
  const current = ask("groups");
  const params = new URLSearchParams({ limit: "50" });
  if (state.groupsCursor) params.set("cursor", state.groupsCursor);
  try {
    const { body, next } = await api("GET", `/customer/groups?${params}`);
    if (!current()) return;
    const rows = $("groups-rows");
    rows.replaceChildren(...body.map((g) => {
      const row = el("tr");
      row.dataset.groupId = g.group_id;
      const first = el("td");
      first.append(link(g.group_id, `#/groups/${enc(g.group_id)}`));
      row.append(first, el("td", g.description || "-"), el("td", g.device_count), el("td", fmtTime(g.created_at)));
      return row;
    }));
    if (!body.length) rows.append(message("No groups.", 4));
    pager("groups", next);
  } catch (e) {
    if (current() && e.status !== 401) notice(`Could not list the groups: ${e.message}`);
  }
}

// PUT creates a group, or sets the description of one that exists: "Create" asks first, so that
// it never changes a group it did not create.
async function createGroup(event) {
  event.preventDefault();
  const form = $("group-form");
  clearErrors(form);
  const id = $("grp-f-group_id").value.trim();
  const description = $("grp-f-description").value.trim();
  if (!id) { fieldError("grp-", "group_id", "Write the group's id."); return; }
  try {
    await api("GET", `/customer/groups/${enc(id)}`);
    fieldError("grp-", "group_id", `Group ${id} exists already.`);
    return;
  } catch (e) {
    if (e.status !== 404) { refused("grp-", e, "group_id"); return; }
  }
  try {
    await api("PUT", `/customer/groups/${enc(id)}`, description ? { description } : {});
    form.reset();
    go(`#/groups/${enc(id)}`, `Group ${id} created: add its devices.`);
  } catch (e) { refused("grp-", e, "group_id"); }
}

// ---- one group ----

async function loadGroup() {
  const id = state.groupId;
  try {
    const { body: g } = await api("GET", `/customer/groups/${enc(id)}`);
    if (state.groupId !== id) return;
    $("group-title").textContent = `Group ${g.group_id}`;
    $("group-facts").replaceChildren(
      el("dt", "Description"), el("dd", g.description || "-"),
      el("dt", "Devices"), el("dd", g.device_count),
      el("dt", "Created"), el("dd", fmtTime(g.created_at)),
    );
    $("group-facts").dataset.deviceCount = String(g.device_count);
    if (document.activeElement !== $("desc-f-description")) $("desc-f-description").value = g.description || "";
  } catch (e) {
    if (state.groupId !== id || e.status === 401) return;
    notice(e.status === 404 ? `Group ${id} not found.` : `Could not read the group: ${e.message}`);
  }
}

// The group's members: the devices list filtered by the group, each with a "Remove".
async function loadMembers() {
  const id = state.groupId;
  const current = ask("members");
  const params = new URLSearchParams({ limit: "50", group_id: id });
  if (state.membersCursor) params.set("cursor", state.membersCursor);
  try {
    const { body, next } = await api("GET", `/customer/devices?${params}`);
    if (!current() || state.groupId !== id) return;
    const rows = $("members-rows");
    rows.replaceChildren(...body.map((d) => {
      const row = deviceRow(d);
      const action = el("td");
      action.append(button("Remove", `Remove ${d.device_id} from group ${id}`, () => removeMember(d.device_id)));
      row.append(action);
      return row;
    }));
    if (!body.length) rows.append(message("No devices in this group.", 5));
    pager("members", next);
  } catch (e) {
    if (current() && e.status !== 401 && e.status !== 404) notice(`Could not list the members: ${e.message}`);
  }
}

function reloadGroup() { loadGroup(); loadMembers(); }

// One device id (PUT, idempotent) or several separated by spaces or commas (POST, all or none).
async function addMembers(event) {
  event.preventDefault();
  const group = state.groupId;
  clearErrors($("member-form"));
  const ids = $("mem-f-device_id").value.split(/[\s,]+/).filter(Boolean);
  if (!ids.length) { fieldError("mem-", "device_id", "Write a device id."); return; }
  try {
    let said;
    if (ids.length === 1) {
      const { body } = await api("PUT", `/customer/groups/${enc(group)}/devices/${enc(ids[0])}`);
      said = body.changed ? `Device ${ids[0]} added to group ${group}.` : `Device ${ids[0]} was in group ${group} already.`;
    } else {
      const { body } = await api("POST", `/customer/groups/${enc(group)}/devices`, { device_ids: ids });
      said = `${body.added} device(s) added to group ${group}, which has ${body.device_count}.`;
    }
    $("mem-f-device_id").value = "";
    notice(said);
    reloadGroup();
  } catch (e) { refused("mem-", e, "device_id"); }
}

async function removeMember(deviceId) {
  const group = state.groupId;
  try {
    await api("DELETE", `/customer/groups/${enc(group)}/devices/${enc(deviceId)}`);
    notice(`Device ${deviceId} removed from group ${group}.`);
    reloadGroup();
  } catch (e) { if (e.status !== 401) notice(`Could not remove ${deviceId}: ${e.message}`); }
}

async function saveDescription(event) {
  event.preventDefault();
  const group = state.groupId;
  clearErrors($("describe-form"));
  const description = $("desc-f-description").value.trim();
  try {
    await api("PUT", `/customer/groups/${enc(group)}`, { description: description || null });
    notice(`The description of group ${group} is saved.`);
    loadGroup();
  } catch (e) { refused("desc-", e); }
}

async function deleteGroup() {
  const id = state.groupId;
  if (!window.confirm(`Delete group ${id}? Its devices stay registered; they are no longer in it.`)) return;
  try {
    const { body } = await api("DELETE", `/customer/groups/${enc(id)}`);
    go("#/groups", `Group ${id} deleted (it had ${body.removed_members} device(s)).`);
  } catch (e) { if (e.status !== 401) notice(`Could not delete: ${e.message}`); }
}

// ---- the pages ----

function openGroups() {
  stopRefresh();
  show("groups");
  loadGroups();
}

function openGroup(id) {
  stopRefresh();
  state.groupId = id;
  state.membersCursor = null;
  $("group-title").textContent = `Group ${id}`;
  for (const node of ["group-facts", "members-rows"]) $(node).replaceChildren();
  for (const form of ["describe-form", "member-form"]) { $(form).reset(); clearErrors($(form)); }
  show("group");
  reloadGroup();
}

function wireGroups() {
  $("group-form").addEventListener("submit", createGroup);
  $("groups-next").addEventListener("click", () => { state.groupsCursor = state.groupsNext; loadGroups(); });
  $("groups-first").addEventListener("click", () => { state.groupsCursor = null; loadGroups(); });
  $("describe-form").addEventListener("submit", saveDescription);
  $("member-form").addEventListener("submit", addMembers);
  $("members-next").addEventListener("click", () => { state.membersCursor = state.membersNext; loadMembers(); });
  $("members-first").addEventListener("click", () => { state.membersCursor = null; loadMembers(); });
  $("delete-group").addEventListener("click", deleteGroup);
}
