// The operator console's routes, and its start. Loaded last: api.js (the API, shared helpers),
// jobs.js, devices.js, groups.js and templates.js (the pages) define what it calls.
"use strict";

// The hash of each page; the first that matches opens (its parts decoded), #/jobs otherwise.
const ROUTES = [
  [/^#\/jobs\/(.+)$/, openJob], [/^#\/new$/, openNewJob], [/^#\/new\/(.+)$/, openNewJob],
  [/^#\/devices\/(.+)$/, openDevice], [/^#\/devices$/, openDevices], [/^#\/register$/, openRegister],
  [/^#\/groups\/(.+)$/, openGroup], [/^#\/groups$/, openGroups],
  [/^#\/templates\/(.+)$/, openTemplate], [/^#\/templates$/, openTemplates],
];

let flash = null; // what the next page says first (go), as a notice

// Another page, saying what just happened there.
function go(hash, text) {
  flash = text;
  if (location.hash === hash) route();
  else location.hash = hash;
}

function decoded(part) {
  try { return decodeURIComponent(part); } catch (e) { return part; }
}

function route() {
  hideToken(); // a token shown once goes with the page it was shown on
  notice(flash || "");
  flash = null;
  state.jobId = state.deviceId = state.groupId = state.templateId = null;
  if (!token()) { stopRefresh(); show("sign-in"); $("token").focus(); return; }
  const hash = location.hash || "#/jobs";
  for (const [pattern, open] of ROUTES) {
    const found = hash.match(pattern);
    if (found) { open(...found.slice(1).map(decoded)); return; }
  }
  openJobs();
}

function start() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    route();
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  wireJobs();
  wireDevices();
  wireGroups();
  wireTemplates();
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", start);
