// The board panel: folds the run's events (server-sent, in order) into what the page shows.
"use strict";
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
const $ = (id) => document.getElementById(id);
const fmt = (x, digits = 3) => (x === null || x === undefined) ? "\u2014" : Number(x).toFixed(digits);
const state = { positions: new Map(), total: 0, n: 0, point: null, pointsDone: 0, firstPointWall: null,
                lastPointWall: null, selected: null, ended: false, received: 0, prompt: null };

function tile(number) {
  let t = state.positions.get(number);
  if (!t) {
    const el = document.createElement("div");
    el.className = "tile"; el.dataset.position = number;
    el.innerHTML = `<div class="head"><span class="pos"></span><span class="serial"></span></div>
      <div class="error">\u2014</div><svg class="band" viewBox="0 0 100 12"></svg>
      <div class="pulses"></div><div class="lights"></div>`;
    el.addEventListener("click", () => select(number));
    $("tiles").appendChild(el);
    t = { number, serial: "", el, results: [], measured: null, failed: false };
    state.positions.set(number, t);
  }
  return t;
}

function select(number) {
  state.selected = number;
  for (const t of state.positions.values()) t.el.classList.toggle("selected", t.number === number);
  drawCurve();
}

function band(t, r) {
  // The error with its U against the limit band: the band is +-limit, the bar is error +- U.
  const svg = t.el.querySelector("svg.band");
  if (r.limit_pct === null || r.error_pct === null) { svg.innerHTML = ""; return; }
  const span = Math.max(r.limit_pct * 1.5, Math.abs(r.error_pct) + (r.u_pct || 0));
  const x = (v) => 50 + 50 * v / span;
  svg.innerHTML = `<rect x="${x(-r.limit_pct)}" y="2" width="${x(r.limit_pct) - x(-r.limit_pct)}" height="8" fill="#dfe9df"/>
    <line x1="${x(r.error_pct - (r.u_pct || 0))}" x2="${x(r.error_pct + (r.u_pct || 0))}" y1="6" y2="6" stroke="#333" stroke-width="2"/>
    <circle cx="${x(r.error_pct)}" cy="6" r="2.5" fill="${r.verdict === "PASS" ? "#1b7f3a" : "#b3261e"}"/>`;
}

// Events are applied in batches, four times a second (FLUSH_MS), and each batch draws each changed tile
// and the curve once: a burst (a whole board's results at a point's end) costs the page one drawing,
// and the browser paints at most four times a second, as the terminal display redraws.
const FLUSH_MS = 250;
const dirty = { tiles: new Set(), curve: false };

function redraw() {
  for (const t of dirty.tiles) {
    const r = t.measured;  // the latest measured error (a check without one, a count or a register, only lights up)
    if (r) {
      t.el.querySelector(".error").innerHTML = `${r.error_pct >= 0 ? "+" : ""}${fmt(r.error_pct)} % <small>\u00b1 ${fmt(r.u_pct)}</small>`;
      t.el.querySelector(".error").title = `${r.name}: ${r.summary}`;
      band(t, r);
    }
    t.el.classList.toggle("fail", t.failed); t.el.classList.toggle("pass", !t.failed);
  }
  dirty.tiles.clear();
  if (dirty.curve) { dirty.curve = false; drawCurve(); }
}

function onResult(d) {
  const t = tile(d.position);
  t.results.push(d);
  const light = document.createElement("i");
  light.className = d.verdict; light.title = `${d.name}: ${d.summary}`;
  t.el.querySelector(".lights").appendChild(light);
  if (d.error_pct !== null) t.measured = d;
  t.failed = t.failed || d.verdict !== "PASS";
  dirty.tiles.add(t);
  if (state.selected === null) select(d.position); else if (state.selected === d.position) dirty.curve = true;
}

function drawCurve() {
  const t = state.positions.get(state.selected);
  const svg = $("curve");
  if (!t) { svg.innerHTML = ""; return; }
  $("curve-meter").textContent = `position ${t.number} ${t.serial}`;
  const rs = t.results.filter((r) => r.error_pct !== null);
  const w = 800, h = 240, left = 50, right = 10, top = 10, bottom = 30;
  const span = Math.max(0.5, ...rs.map((r) => Math.max(Math.abs(r.error_pct) + (r.u_pct || 0), r.limit_pct || 0))) * 1.15;
  const n = Math.max(rs.length, 1);
  const x = (i) => left + (w - left - right) * (i + 0.5) / n;
  const y = (v) => top + (h - top - bottom) * (0.5 - v / (2 * span));
  const labelEvery = Math.ceil(n / 12);  // point ids are up to ~10 characters: a dozen fit under the axis
  let out = `<line x1="${left}" x2="${w - right}" y1="${y(0)}" y2="${y(0)}" stroke="#999"/>`;
  out += `<text x="4" y="${y(span * 0.8)}" font-size="11">+${fmt(span * 0.8, 2)} %</text><text x="4" y="${y(-span * 0.8)}" font-size="11">${fmt(-span * 0.8, 2)} %</text>`;
  rs.forEach((r, i) => {
    if (r.limit_pct !== null) out += `<rect x="${x(i) - 8}" y="${y(r.limit_pct)}" width="16" height="${y(-r.limit_pct) - y(r.limit_pct)}" fill="#e3eee3"/>`;
  });
  const path = rs.map((r, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(r.error_pct).toFixed(1)}`).join(" ");
  if (path) out += `<path d="${path}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>`;
  rs.forEach((r, i) => {
    const colour = r.verdict === "PASS" ? "#1b7f3a" : "#b3261e";
    out += `<line x1="${x(i)}" x2="${x(i)}" y1="${y(r.error_pct + (r.u_pct || 0))}" y2="${y(r.error_pct - (r.u_pct || 0))}" stroke="${colour}"/>`;
    out += `<circle cx="${x(i)}" cy="${y(r.error_pct)}" r="3" fill="${colour}"><title>${r.name}: ${r.summary}</title></circle>`;
    if (i % labelEvery === 0) out += `<text x="${x(i)}" y="${h - 8}" font-size="9" text-anchor="middle">${r.point}</text>`;
  });
  svg.innerHTML = out;
}

function banner(text, kind = "") {
  const div = document.createElement("div");
  div.className = `banner ${kind}`; div.textContent = text;
  $("banners").appendChild(div);
}

function eta() {
  if (state.ended || !state.total || state.pointsDone < 1 || state.firstPointWall === null) return;
  // bench/operator/board.py's BoardView.eta_s: the points after the current one at the average time of
  // those done, and what is left of the current one at that average
  const per = (state.lastPointWall - state.firstPointWall) / state.pointsDone;
  const left = per * Math.max(state.total - state.pointsDone - 1, 0)
    + Math.max(per - (Date.now() / 1000 - state.lastPointWall), 0);
  const when = new Date((Date.now() / 1000 + Math.max(left, 0)) * 1000);
  $("eta").textContent = `ETA ${when.toLocaleTimeString()} (${Math.max(0, Math.round(left))} s)`;
}

function showPrompt(d) {
  state.prompt = d.id;
  $("prompt").hidden = false; $("prompt-title").textContent = d.title; $("prompt-error").textContent = "";
  $("prompt-fields").innerHTML = d.fields.map((f) => {
    const input = f.kind === "choice"
      ? `<select name="${f.name}" id="f-${f.name}">${f.choices.map((c) => `<option>${c}</option>`).join("")}</select>`
      : `<input name="${f.name}" id="f-${f.name}" ${f.kind === "number" ? 'inputmode="decimal"' : ""}>`;
    return `<div class="field"><label for="f-${f.name}">${f.label}</label> ${input}</div>`;
  }).join("");
}

$("prompt-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const reply = await fetch(withToken(`prompts/${state.prompt}`), { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(Object.fromEntries(new FormData(e.target))) });
  const body = await reply.json();
  $("prompt-error").textContent = reply.ok ? "" : body.error;
});

$("abort").addEventListener("click", async () => {
  if (!confirm("Abort the run? The bench goes to safe state and the record stays incomplete.")) return;
  $("abort").disabled = true;
  const reply = await fetch(withToken("abort"), { method: "POST" });
  if (!reply.ok) { $("abort").disabled = false; banner((await reply.json()).error); }
});

const handlers = {
  run(d) {
    $("board").textContent = `${d.board} \u00b7 ${d.positions.length} positions \u00b7 operator ${d.operator}`;
    state.total = d.points;
    for (const p of d.positions) { const t = tile(p.number); t.serial = p.serial;
      t.el.querySelector(".pos").textContent = `#${p.number}`; t.el.querySelector(".serial").textContent = p.serial; }
    if (!d.can_abort) $("abort").hidden = true;
  },
  point(d, e) {
    if (state.point !== null) { state.pointsDone += 1; state.lastPointWall = e.wall; }
    if (state.firstPointWall === null) { state.firstPointWall = e.wall; state.lastPointWall = e.wall; }
    state.point = d.id; state.total = d.total;
    $("point-n").textContent = `point ${d.n} of ${d.total}`; $("point-name").textContent = d.name;
    for (const t of state.positions.values()) t.el.querySelector(".pulses").textContent = "";
    $("step").textContent = "";
  },
  stimulus(d) {
    if (d.off) {
      $("stimulus").querySelector("tbody").innerHTML = `<tr><td>outputs off (safe state)</td></tr>`;
      $("stimulus-extra").textContent = ""; return;
    }
    $("stimulus").querySelector("tbody").innerHTML = `<tr><th></th><th>V</th><th>V angle</th><th>I (A)</th><th>I lag</th></tr>` +
      d.phases.map((p, k) => `<tr><th>${"ABC"[k] || k + 1}</th><td>${fmt(p.v, 2)}</td><td>${fmt(p.v_angle, 1)}\u00b0</td><td>${fmt(p.i, 3)}</td><td>${fmt(p.lag, 1)}\u00b0</td></tr>`).join("");
    $("stimulus-extra").textContent = `f ${fmt(d.f, 2)} Hz \u00b7 THD V ${fmt(d.thd_v_pct, 1)} % \u00b7 THD I ${fmt(d.thd_i_pct, 1)} % \u00b7 ${fmt(d.power_w, 1)} W`;
  },
  readings(d) {
    const shown = (v) => Array.isArray(v) ? v.map((x) => fmt(x, 3)).join(" / ") : fmt(v, 4);
    $("readings").textContent = Object.entries(d).map(([k, v]) => `${k} ${shown(v)}`).join(" \u00b7 ");
  },
  gate(d) {
    for (const [n, gated] of Object.entries(d.positions)) {
      tile(Number(n)).el.querySelector(".pulses").textContent = `${gated} / ${d.needed} pulses gated`;
    }
    $("step").textContent = `${d.name}: ${Math.round(d.elapsed_s)} s of ${Math.round(d.expected_s)} s (bench time)`;
  },
  result: onResult,
  step(d) { $("step").textContent = `${d.name}: ${d.detail}, ${Math.round(d.elapsed_s)} s of ${Math.round(d.expected_s)} s (bench time)`; },
  safety(d) { banner(`SAFETY: ${d.message}`); },
  prompt: showPrompt,
  answer(d) { if (state.prompt === d.id) { $("prompt").hidden = true; state.prompt = null; } },
  end(d) {
    state.ended = true; $("abort").disabled = true; $("eta").textContent = "";
    banner(`Run ended: ${d.status}${d.why ? ` (${d.why})` : ""}`, d.status === "complete" ? "done" : "");
  },
};

const queued = [];

function flush() {
  for (const e of queued.splice(0)) {
    state.received = e.seq;
    const handle = handlers[e.kind];
    if (handle) handle(e.data, e);
  }
  redraw();
  document.body.dataset.seq = state.received;  // what the page shows now
}

const source = new EventSource(withToken("events"));
source.onmessage = (message) => {
  if (!queued.length) setTimeout(flush, FLUSH_MS);
  queued.push(JSON.parse(message.data));
};
setInterval(eta, 1000);
