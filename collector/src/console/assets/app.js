// authtrail console. Served as a file (the CSP allows no inline script); builds the DOM with
// textContent only, never HTML from data.
"use strict";

const page = document.getElementById("page");
const filters = document.getElementById("filters");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// A time in the viewer's zone, UTC on hover.
function time(us) {
  if (us === null || us === undefined) return el("span", { class: "muted" }, "never");
  const d = new Date(us / 1000);
  return el("time", { datetime: d.toISOString(), title: d.toISOString().replace(".000Z", "Z") + " UTC" },
    d.toLocaleString());
}

function query(extra) {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(filters)) {
    if (!v) continue;
    if (k === "since" || k === "until") p.set(k, new Date(v).toISOString()); else p.set(k, v);
  }
  for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined) p.set(k, v);
  return p.toString();
}

async function api(path, extra) {
  const r = await fetch("/api/v1/" + path + "?" + query(extra), { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/"; throw new Error("logged out"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows));
}

function eventRows(events) {
  return events.map((e) => el("tr", { class: e.cited ? "cited" : "", title: e.cited ? "cited by the alert" : "" },
    el("td", {}, time(e.timestamp_us)), el("td", {}, e.host), el("td", { class: e.outcome || "" }, e.action),
    el("td", {}, e.user), el("td", {}, e.source_ip),
    el("td", {}, el("pre", { class: "raw" }, e.doc ? (e.doc.message || JSON.stringify(e.doc)) : ""))));
}

function pager(body, render) {
  const nav = el("p", {});
  if (body.offset > 0) {
    const b = el("button", { type: "button" }, "Newer");
    b.addEventListener("click", () => render(Math.max(0, body.offset - body.limit)));
    nav.append(b, " ");
  }
  if (body.next_offset !== null && body.next_offset !== undefined) {
    const b = el("button", { type: "button" }, "Older");
    b.addEventListener("click", () => render(body.next_offset));
    nav.append(b);
  }
  if (body.truncated) nav.append(el("span", { class: "muted" }, " (the oldest events were not read: narrow the filters)"));
  return nav;
}

// A fleet alert's evidence is in the alert itself: the events on each host it cites.
function fleetEvidence(g, cell) {
  cell.textContent = "";
  cell.append(el("h3", {}, "Evidence: " + g.evidence.length + " events on " + g.hosts.length + " hosts"),
    table(["Time", "Host", "Action", "User", "Source"], g.evidence.map((e) => el("tr", { class: "cited" },
      el("td", {}, time(Date.parse(e["@timestamp"]) * 1000)), el("td", {}, e.host ? e.host.hostname : ""),
      el("td", {}, e.event ? e.event.action : ""), el("td", {}, e.user ? e.user.name : ""),
      el("td", {}, e.source ? e.source.ip : "")))));
}

async function evidence(g, cell) {
  if (g.origin === "fleet") return fleetEvidence(g, cell);
  cell.textContent = "Loading evidence…";
  const p = new URLSearchParams({ since: g.start_us, until: g.end_us });
  if (g.host) p.set("host", g.host);
  if (g.source_ip) p.set("source_ip", g.source_ip);
  if (g.user) p.set("user", g.user);
  if (g.cites && g.cites.length) p.set("cites", g.cites.join(","));
  const r = await fetch("/api/v1/alerts/evidence?" + p, { credentials: "same-origin" });
  const b = await r.json();
  cell.textContent = "";
  const hdr = ["Time", "Host", "Action", "User", "Source", "Raw"];
  cell.append(el("h3", {}, "Evidence: " + b.evidence_total + " events from this source"),
    table(hdr, eventRows(b.evidence)));
  cell.append(el("h3", {}, "What " + (g.user || "the user") + " did next on " + (g.host || "the host")),
    b.next.length ? table(hdr, eventRows(b.next)) : el("p", { class: "muted" }, "Nothing in the next 24 hours."));
  if (b.hosts_reached_after.length) cell.append(el("p", {}, "Hosts reached after: " + b.hosts_reached_after.join(", ")));
}

async function alerts(offset = 0) {
  const b = await api("alerts", { offset });
  const rows = [];
  for (const g of b.items) {
    const btn = el("button", { type: "button", "aria-expanded": "false" }, "Evidence");
    const detail = el("tr", { class: "detail", hidden: "" }, el("td", { colspan: "9" }));
    btn.addEventListener("click", () => {
      const open = btn.getAttribute("aria-expanded") === "true";
      btn.setAttribute("aria-expanded", String(!open));
      if (open) { detail.hidden = true; return; }
      detail.hidden = false;
      evidence(g, detail.firstChild).catch((e) => { detail.firstChild.textContent = String(e); });
    });
    rows.push(el("tr", { class: "alert " + g.origin, "data-rule": g.rule },
      el("td", {}, time(g.end_us)),
      el("td", { class: g.severity >= 73 ? "sev-high" : "" }, g.rule.replaceAll("_", " ") + " (" + g.severity + ")"),
      el("td", { title: g.origin === "fleet" ? "raised by the collector across hosts" : "raised by the host's agent" }, g.origin),
      el("td", {}, g.host || (g.hosts || []).join(", ")), el("td", {}, g.source_ip), el("td", {}, g.user),
      el("td", {}, g.alerts + " alert" + (g.alerts === 1 ? "" : "s") + ", " + g.attempts + " attempts, since ", time(g.start_us)),
      el("td", {}, g.reason), el("td", {}, btn)));
    rows.push(detail);
  }
  show(el("h2", {}, "Alerts"),
    el("p", { class: "muted" }, "Newest first; one row per attack, the agents' (edge) and the collector's across hosts (fleet). Evidence opens the events it cites and what the user did next."),
    b.items.length ? table(["Last", "Rule", "From", "Host", "Source", "User", "Span", "Why", ""], rows) : el("p", {}, "No alerts."),
    pager(b, alerts));
  // `#alerts/N` opens the Nth group's evidence (a link to an expanded alert).
  const open = /^#alerts\/(\d+)$/.exec(location.hash);
  const btns = page.querySelectorAll("tr.alert button");
  if (open && btns[Number(open[1])]) btns[Number(open[1])].click();
}

const BUCKET_NAMES = { 60000000: "minute", 600000000: "10 minutes", 3600000000: "hour" };

// `#timeline` is the filters' range; `#timeline/SINCE/UNTIL` (µs) a zoom. A bar is a button:
// click it (or focus it and press Enter) to zoom into it, drag across bars to zoom into the
// span; "Zoom out" or Escape goes back to the filters' range.
async function timeline() {
  const zoom = /^#timeline\/(-?\d+)\/(-?\d+)$/.exec(location.hash);
  const b = await api("timeline", zoom ? { since: zoom[1], until: zoom[2] } : {});
  const step = b.bucket_us;
  const counts = new Map(b.items.map((i) => [i.start_us, i]));
  // Empty buckets too, so the axis is time (unless the range holds too many).
  const first = Math.floor(b.since_us / step) * step;
  let starts = b.items.map((i) => i.start_us);
  if ((b.until_us - first) / step <= 1000) {
    starts = [];
    for (let t = first; t <= b.until_us; t += step) starts.push(t);
  }
  const max = Math.max(1, ...b.items.map((i) => i.successes + i.failures));
  const zoomable = step > 60000000;
  const chart = el("div", { class: "chart", role: "group", "aria-label": "Logins per " + BUCKET_NAMES[step] });
  let dragFrom = null;
  const zoomTo = (a, z) => { location.hash = "#timeline/" + Math.min(a, z) + "/" + (Math.max(a, z) + step - 1); };
  for (const t of starts) {
    const i = counts.get(t) || { successes: 0, failures: 0 };
    const d = new Date(t / 1000);
    const label = d.toLocaleString() + " (" + d.toISOString() + "): " + i.successes + " successes, " + i.failures + " failures" + (zoomable ? ". Zoom in" : "");
    const bar = el(zoomable ? "button" : "div", { class: "bar", title: label, "aria-label": label, "data-start": t });
    if (zoomable) {
      bar.type = "button";
      bar.addEventListener("mousedown", () => { dragFrom = t; });
      bar.addEventListener("mouseup", (e) => {
        if (dragFrom !== null && dragFrom !== t) { e.preventDefault(); zoomTo(dragFrom, t); }
        dragFrom = null;
      });
      bar.addEventListener("click", () => zoomTo(t, t));
    } else {
      bar.tabIndex = 0;
    }
    bar.append(el("div", { class: "s" }), el("div", { class: "f" }));
    bar.children[0].style.height = (200 * i.successes / max) + "px";
    bar.children[1].style.height = (200 * i.failures / max) + "px";
    chart.append(bar);
  }
  const range = el("p", {}, "From ", time(b.since_us), " to ", time(b.until_us), ", one bar per " + BUCKET_NAMES[step] + ". ");
  if (zoom) {
    const out = el("button", { type: "button", id: "zoom-out" }, "Zoom out");
    out.addEventListener("click", () => { location.hash = "#timeline"; });
    range.append(out);
  } else if (zoomable) {
    range.append(el("span", { class: "muted" }, "Click a bar, or drag across bars, to zoom in."));
  }
  show(el("h2", {}, "Logins per " + BUCKET_NAMES[step]), range,
    el("p", { class: "legend" }, el("span", { class: "success" }, "■ successes"), el("span", { class: "failure" }, "■ failures")),
    chart, b.truncated ? el("p", { class: "muted" }, "Only the newest events were read: narrow the filters.") : "");
}

async function hosts(offset = 0) {
  const b = await api("hosts", { offset });
  const spool = (b) => b === null || b === undefined ? el("span", { class: "muted" }, "not reported")
    : el("span", { class: b.batches > 1 ? "failure" : "", title: "reported " + new Date(b.reported_us / 1000).toISOString() },
      b.batches + " batch" + (b.batches === 1 ? "" : "es") + ", " + (b.bytes / 1048576).toFixed(1) + " MiB, behind " + Math.round(b.lag_ms / 1000) + " s");
  show(el("h2", {}, "Hosts"), table(["Host", "Agent", "Version", "Last heartbeat", "Last event", "Lag", "Spool backlog", "State"],
    b.items.map((h) => el("tr", { class: h.stale ? "stale" : "" },
      el("td", {}, h.hostname), el("td", {}, h.agent_id), el("td", {}, h.agent_version || "?"),
      el("td", {}, time(h.last_heartbeat_us)), el("td", {}, time(h.last_event_us), " ", h.last_event_action || ""),
      el("td", {}, h.lag_us === null ? "" : Math.round(h.lag_us / 1e6) + " s"), el("td", {}, spool(h.spool)),
      el("td", {}, h.stale ? "STALE" : "ok")))), pager(b, hosts));
}

async function users(offset = 0) {
  const b = await api("users", { offset });
  show(el("h2", {}, "Users"), table(["User", "Hosts logged in to", "From addresses", "From networks", "First seen", "Successes", "Failures", "sudo/su"],
    b.items.map((u) => el("tr", {}, el("td", {}, u.user), el("td", {}, u.hosts.join(", ")),
      el("td", {}, u.sources.join(", ")), el("td", {}, u.networks.join(", ")), el("td", {}, time(u.first_seen_us)),
      el("td", {}, u.successes), el("td", {}, u.failures), el("td", {}, u.sudo)))), pager(b, users));
}

async function sources(offset = 0) {
  const b = await api("sources", { offset });
  show(el("h2", {}, "Sources"), table(["Address", "Hosts", "Users", "Successes", "Failures", "Last seen"],
    b.items.map((s) => el("tr", {}, el("td", {}, s.source_ip), el("td", {}, s.hosts.join(", ")),
      el("td", {}, s.users.join(", ")), el("td", { class: s.successes ? "success" : "" }, s.successes),
      el("td", {}, s.failures), el("td", {}, time(s.last_seen_us))))), pager(b, sources));
}

function show(...children) {
  page.textContent = "";
  for (const c of children) if (c) page.append(c);
  document.body.dataset.loaded = location.hash || "#alerts";
}

const pages = { "#alerts": alerts, "#timeline": timeline, "#hosts": hosts, "#users": users, "#sources": sources };

function route() {
  const h = location.hash.startsWith("#alerts/") ? "#alerts"
    : location.hash.startsWith("#timeline/") ? "#timeline"
    : pages[location.hash] ? location.hash : "#alerts";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === h) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  pages[h]().catch((e) => show(el("p", { class: "note" }, String(e))));
}

filters.addEventListener("submit", (e) => { e.preventDefault(); route(); });
window.addEventListener("hashchange", route);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && location.hash.startsWith("#timeline/")) location.hash = "#timeline";
});
document.getElementById("logout").addEventListener("click", async () => {
  const s = await (await fetch("/api/v1/session", { credentials: "same-origin" })).json();
  await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": s.csrf || "" }, credentials: "same-origin" });
  location.href = "/";
});
route();
