// NORA operator console. Everything the server sends is shown with textContent, never as HTML.
"use strict";
const $ = (id) => document.getElementById(id);

// The token comes in the URL fragment (never sent to the server or logged) and is kept for
// this tab; changing requests send it in a header, reads of images use a same-site cookie.
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get("token")) {
  sessionStorage.setItem("nora_token", hash.get("token"));
  history.replaceState(null, "", location.pathname);
}
const token = sessionStorage.getItem("nora_token") || "";
if (token) {
  document.cookie = "nora_token=" + encodeURIComponent(token) + "; SameSite=Strict; path=/";
  $("camera").src = "/api/camera.mjpg?t=" + Date.now();
}

function say(text) { $("message").textContent = text; }

async function post(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["X-Nora-Token"] = token;
  try {
    const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
    const data = await r.json().catch(() => ({}));
    say(r.ok ? "" : (data.error || ("request failed: " + r.status)));
  } catch (e) {
    say("console unreachable: " + e);
  }
  refresh();
}

async function get(path) {
  const headers = token ? { "X-Nora-Token": token } : {};
  const r = await fetch(path, { headers, cache: "no-store" });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.status);
  return r.json();
}

function cell(tr, text, tag) {
  const c = document.createElement(tag || "td");
  c.textContent = text;
  tr.appendChild(c);
}

function fmtTime(s) {
  if (s === null || s === undefined) return "-";
  const m = Math.floor(s / 60);
  return m ? m + " min " + Math.round(s % 60) + " s" : s.toFixed(1) + " s";
}

let presetsShown = "";
function showStatus(s) {
  $("state").textContent = s.state;
  $("trial").textContent = s.trial_id ? String(s.trial_id) + (s.task ? " (" + s.task + ")" : "") : "-";
  $("instr").textContent = s.instruction || "-";
  $("model").textContent = s.model || (s.plan && s.plan.blind ? "hidden until the plan is complete (blind)" : "-");
  $("elapsed").textContent = fmtTime(s.elapsed_s);
  $("steps").textContent = String(s.steps);
  $("policy").textContent = (s.latency_s === null ? "latency -" : "latency " + (1000 * s.latency_s).toFixed(0) + " ms")
    + ", " + (s.rate_hz === null ? "rate -" : "rate " + s.rate_hz.toFixed(1) + " Hz");
  $("reason").textContent = s.reason || "-";
  const sf = s.safety;
  const safety = $("safety");
  safety.textContent = sf.estopped ? "E-STOP LATCHED: " + sf.estop_reason + " (press Reset after checking the arm)"
    : (sf.enabled ? "actuation enabled" : "dry run (actuation disabled)");
  safety.textContent += sf.holding ? "; arm held" : "; arm moving";
  safety.className = sf.estopped ? "latched" : "";
  $("limits").textContent = "limits acted in the last seconds: " + (sf.recent_limits.join(", ") || "none");
  const p = s.plan;
  $("plan").textContent = p ? p.name + ": " + p.label
    + (p.next_task ? "; next: " + p.next_task + (p.next_model ? " with " + p.next_model : "")
       + (p.next_setup ? "; set up: " + p.next_setup : "") : "")
    + "; time left about " + fmtTime(p.eta_s) : "no evaluation plan loaded";
  const key = s.presets.join("\n");
  if (key !== presetsShown) {
    presetsShown = key;
    const list = $("presets"), buttons = $("preset-buttons");
    list.replaceChildren(); buttons.replaceChildren();
    for (const text of s.presets) {
      const o = document.createElement("option"); o.value = text; list.appendChild(o);
      const b = document.createElement("button"); b.textContent = text; b.className = "preset";
      b.addEventListener("click", () => { $("instruction").value = text; });
      buttons.appendChild(b);
    }
  }
}

const PLOT_URL = /^\/api\/trials\/[0-9]+\/plot\.png$/;  // the server's own link, nothing else

function showResults(d) {
  const head = $("results").tHead, body = $("results").tBodies[0];
  head.replaceChildren(); body.replaceChildren();
  const hr = document.createElement("tr");
  cell(hr, "Task", "th");
  for (const m of d.models) cell(hr, m, "th");
  head.appendChild(hr);
  for (const row of d.rows) {
    const tr = document.createElement("tr");
    cell(tr, (row.category ? row.category + " / " : "") + row.task);
    for (const c of row.cells) cell(tr, c);
    body.appendChild(tr);
  }
  if (d.models.length) {
    const tr = document.createElement("tr");
    cell(tr, "Average");
    for (const c of d.average) cell(tr, c);
    body.appendChild(tr);
  }
  $("pooled").hidden = !d.pooled;
  const tb = $("trials").tBodies[0];
  tb.replaceChildren();
  for (const t of d.trials) {
    const tr = document.createElement("tr");
    const model = t.model || (d.pooled ? "hidden until the plan is complete" : "");
    for (const v of [t.trial_id, t.task, model, t.score, t.note, t.steps, t.recording]) cell(tr, String(v));
    const plot = document.createElement("td");
    if (PLOT_URL.test(t.plot || "")) {
      const a = document.createElement("a");
      a.href = t.plot; a.target = "_blank"; a.rel = "noopener"; a.textContent = "plot";
      a.title = "commanded vs sent velocity, gripper and safety limits of trial " + t.trial_id;
      plot.appendChild(a);
    }
    tr.appendChild(plot);
    tb.appendChild(tr);
  }
}

let lastResults = "";
async function refresh() {
  try {
    showStatus(await get("/api/status"));
    const d = await get("/api/results");
    const key = JSON.stringify(d);
    if (key !== lastResults) { lastResults = key; showResults(d); }
  } catch (e) {
    say("status unavailable: " + e.message);
  }
}

function scoreText(kind) {
  const note = $("note").value.trim();
  const frac = kind === "partial" ? " " + ($("fraction").value.trim() || "0.5") : "";
  return kind + frac + (note ? " " + note : "");
}

$("estop").addEventListener("click", () => post("/api/estop"));
$("start").addEventListener("click", () => post("/api/start", { instruction: $("instruction").value }));
$("stop").addEventListener("click", () => post("/api/stop"));
for (const kind of ["success", "failure", "partial", "abort"]) {
  $(kind).addEventListener("click", () => { post("/api/score", { text: scoreText(kind) }); $("note").value = ""; });
}
$("reset").addEventListener("click", () => post("/api/reset"));
$("enable").addEventListener("click", () => post("/api/enable", { enabled: true }));
$("disable").addEventListener("click", () => post("/api/enable", { enabled: false }));
$("show-input").addEventListener("click", () => {
  const img = $("model-input");
  img.hidden = false;
  img.src = "/api/model_input.jpg?t=" + Date.now();
});
// Escape anywhere presses the e-stop too: the fastest key there is.
document.addEventListener("keydown", (e) => { if (e.key === "Escape") post("/api/estop"); });
refresh();
setInterval(refresh, 500);
