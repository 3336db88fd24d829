// embodia view: the front end of `embodia view` (src/embodia/view/viewer.py serves it).
// Plain JS, no build step and nothing fetched from elsewhere, so it works offline. Routes live in the URL
// hash (#/dataset?path=...&episode=N, #/eval?path=..., #/run?path=...) so every view can be bookmarked.
// Text from datasets and results is always set with textContent, never innerHTML: a task string must
// never become markup.
"use strict";

const $main = document.getElementById("main");
const $error = document.getElementById("error");
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"];
let cleanup = [];  // called when leaving a view (stop videos, animation frames)
let redraws = [];  // plots of the current view, redrawn at the new size when the window resizes

// ------------------------------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fileUrl(rel) {
  return "/files/" + rel.split("/").map(encodeURIComponent).join("/");
}

function route(view, params) {
  return "#/" + view + (params ? "?" + new URLSearchParams(params).toString() : "");
}

function pct(x) { return x === null || x === undefined ? "n/a" : (100 * x).toFixed(1) + " %"; }

function fmt(x) {
  if (x === null || x === undefined) return "";
  if (typeof x === "number") return Number.isInteger(x) ? String(x) : x.toPrecision(4);
  return Array.isArray(x) ? x.join(", ") : String(x);
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function table(columns, rows, opts) {
  opts = opts || {};
  const body = rows.map((r, i) => {
    const tr = el("tr", {class: opts.onclick ? "clickable" : null},
      r.map(c => c instanceof Node ? el("td", {}, c)
        : el("td", {class: typeof c === "number" ? "num" : null}, fmt(c))));
    if (opts.onclick) tr.addEventListener("click", () => opts.onclick(i, tr));
    return tr;
  });
  return el("table", {}, opts.caption ? el("caption", {}, opts.caption) : null,
    columns ? el("thead", {}, el("tr", {}, columns.map(c => el("th", {}, c)))) : null, el("tbody", {}, body));
}

function badge(text, cls) { return el("span", {class: "badge " + (cls || text)}, text); }

async function api(path, params) {
  const url = "/api/" + path + (params ? "?" + new URLSearchParams(params).toString() : "");
  const res = await fetch(url);
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON: fall through to the status */ }
  if (!res.ok) throw new Error((data && data.error) || (res.status + " " + res.statusText));
  return data;
}

function showError(msg) {
  $error.textContent = msg;
  $error.hidden = !msg;
}

function crumbs(parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.flatMap((p, i) => [i ? " / " : "", p.href ? el("a", {href: p.href}, p.text) : p.text]));
}

// ------------------------------------------------------------------------------------------ plots

// A line plot on a canvas: x values, several named series, optional log y and a movable cursor.
// Returns {draw(cursorX), xAt(clientX)} so views can move the cursor and map clicks back to x.
function linePlot(canvas, spec) {
  const ctx = canvas.getContext("2d");
  const logY = !!spec.logY;
  const tf = v => (logY ? Math.log10(v) : v);
  let lo = Infinity, hi = -Infinity;
  for (const s of spec.series) for (const v of s.values) {
    if (v === null || (logY && v <= 0)) continue;
    lo = Math.min(lo, tf(v)); hi = Math.max(hi, tf(v));
  }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
  const pad = 0.05 * (hi - lo); lo -= pad; hi += pad;
  const xs = spec.x, x0 = xs.length ? xs[0] : 0, x1 = xs.length > 1 ? xs[xs.length - 1] : x0 + 1;
  const M = {l: 58, r: 10, t: 20, b: 26};

  function size() {
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 600, h = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [w, h];
  }
  function draw(cursorX) {
    const [w, h] = size();
    const px = x => M.l + (x - x0) / (x1 - x0 || 1) * (w - M.l - M.r);
    const py = v => M.t + (1 - (tf(v) - lo) / (hi - lo)) * (h - M.t - M.b);
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif"; ctx.strokeStyle = "#e5e5e5"; ctx.fillStyle = "#555"; ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {  // y grid with labels
      const t = lo + (hi - lo) * i / 4, y = M.t + (1 - i / 4) * (h - M.t - M.b);
      ctx.beginPath(); ctx.moveTo(M.l, y); ctx.lineTo(w - M.r, y); ctx.stroke();
      const v = logY ? Math.pow(10, t) : t;
      const label = Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && Math.abs(v) > 1e-12) ? v.toExponential(2) : v.toPrecision(3);
      ctx.textAlign = "right"; ctx.fillText(label, M.l - 4, y + 4);
    }
    ctx.textAlign = "center";
    const intX = xs.every(Number.isInteger);  // steps and frames: integer ticks, no duplicates
    const nt = intX ? Math.min(4, Math.max(1, x1 - x0)) : 4;
    for (let i = 0; i <= nt; i++) {
      const x = intX ? Math.round(x0 + (x1 - x0) * i / nt) : x0 + (x1 - x0) * i / nt;
      ctx.fillText(intX ? String(x) : x.toFixed(1), px(x), h - 8);
    }
    spec.series.forEach((s, k) => {
      ctx.strokeStyle = s.color || COLORS[k % COLORS.length]; ctx.lineWidth = 1.4; ctx.beginPath();
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || (logY && v <= 0)) { pen = false; return; }
        if (pen) ctx.lineTo(px(xs[i]), py(v)); else ctx.moveTo(px(xs[i]), py(v));
        pen = true;
      });
      ctx.stroke();
    });
    let lx = M.l + 4;  // legend along the top
    ctx.textAlign = "left";
    spec.series.forEach((s, k) => {
      ctx.fillStyle = s.color || COLORS[k % COLORS.length]; ctx.fillRect(lx, 6, 10, 3);
      ctx.fillStyle = "#333"; ctx.fillText(s.name, lx + 13, 12); lx += 18 + ctx.measureText(s.name).width;
    });
    if (spec.title) { ctx.textAlign = "right"; ctx.fillStyle = "#333"; ctx.fillText(spec.title, w - M.r, 12); }
    if (cursorX !== undefined && cursorX !== null) {
      ctx.strokeStyle = "#d00"; ctx.lineWidth = 2; ctx.beginPath();
      ctx.moveTo(px(cursorX), M.t); ctx.lineTo(px(cursorX), h - M.b); ctx.stroke();
    }
    canvas.dataset.drawn = String(spec.series.reduce((n, s) => n + s.values.filter(v => v !== null).length, 0));
  }
  function xAt(clientX) {
    const r = canvas.getBoundingClientRect();
    return x0 + (clientX - r.left - M.l) / (r.width - M.l - M.r) * (x1 - x0);
  }
  let last = null;
  const plot = {draw: c => { last = c; draw(c); }, xAt};
  redraws.push(() => draw(last));
  plot.draw();
  return plot;
}

function seriesOf(block) {
  return block.values.map((values, j) => ({name: block.names[j], values}));
}

// ------------------------------------------------------------------------------------------ views

async function viewIndex() {
  const idx = await api("index");
  crumbs([]);
  const total = idx.datasets.length + idx.evals.length + idx.runs.length;
  // `embodia view FOLDER` on a single dataset / eval / run: open it directly.
  const only = [...idx.datasets.map(d => ["dataset", d]), ...idx.evals.map(d => ["eval", d]), ...idx.runs.map(d => ["run", d])];
  if (total === 1 && only[0][1].path === "." && !location.hash.includes("index")) {
    location.replace(route(only[0][0], {path: "."}));
    return;
  }
  const sections = [el("h1", {}, "Outputs under this folder")];
  if (idx.live) sections.push(el("p", {}, "Live now: ", el("a", {href: route("live")}, idx.live)));
  if (idx.teleop) sections.push(el("p", {}, "Teleoperation: ", el("a", {href: route("teleop")}, "drive the simulated arm")));
  if (idx.truncated) sections.push(el("p", {class: "muted"}, "The folder is large; the search stopped early. Start the viewer in a narrower folder."));
  sections.push(el("h2", {}, `Datasets (${idx.datasets.length})`));
  sections.push(idx.datasets.length ? table(["dataset", "episodes", "frames", "fps", "robot", "data doctor"],
    idx.datasets.map(d => [el("a", {href: route("dataset", {path: d.path})}, d.path), d.total_episodes, d.total_frames,
      d.fps, d.robot_type, d.doctor ? badge(d.doctor_severity || "?") : "not run"])) : el("p", {class: "muted"}, "none found"));
  sections.push(el("h2", {}, `Evaluations (${idx.evals.length})`));
  sections.push(idx.evals.length ? table(["eval folder", "suite", "episodes", "success"],
    idx.evals.map(e => [el("a", {href: route("eval", {path: e.path})}, e.path), e.suite, e.n, pct(e.success_rate)]))
    : el("p", {class: "muted"}, "none found"));
  sections.push(el("h2", {}, `Training runs (${idx.runs.length})`));
  sections.push(idx.runs.length ? table(["run folder", "preset", "steps", "final policy"],
    idx.runs.map(r => [el("a", {href: route("run", {path: r.path})}, r.path), r.preset, r.steps, r.final ? "yes" : "no"]))
    : el("p", {class: "muted"}, "none found"));
  sections.push(el("h2", {}, `Reports (${idx.reports.length})`));
  sections.push(idx.reports.length ? el("ul", {}, idx.reports.map(r => el("li", {}, el("a", {href: fileUrl(r.path)}, r.name))))
    : el("p", {class: "muted"}, "none found"));
  $main.replaceChildren(...sections);
}

async function viewDataset(params) {
  const path = params.get("path");
  const ds = await api("dataset", {path});
  crumbs([{text: "index", href: "#/"}, {text: "dataset " + ds.path}]);
  const epBox = el("div", {class: "episodes"});
  const detail = el("div", {id: "episode"}, el("p", {class: "muted"}, "select an episode"));
  const head = [el("h1", {}, ds.name),
    el("p", {class: "muted"}, `LeRobotDataset ${ds.version}, ${ds.episodes.length} episodes, ${ds.frames} frames at ${ds.fps} fps, robot ${ds.robot_type || "?"}, cameras: ${ds.cameras.join(", ") || "none"}`)];
  if (ds.doctor) {
    const d = ds.doctor, c = d.counts || {};
    head.push(el("p", {}, "Data doctor: ", badge(d.severity || "?"), ` ${c.FAIL || 0} FAIL, ${c.WARN || 0} WARN, ${c.PASS || 0} PASS `,
      el("a", {href: fileUrl(d.path + "/report.html")}, "(report)")));
    const bad = d.checks.filter(x => x.severity === "FAIL" || x.severity === "WARN");
    if (bad.length) head.push(table(["check", "result", "evidence"], bad.map(x => [x.name, badge(x.severity), x.summary]), {caption: "flagged checks"}));
  } else {
    head.push(el("p", {class: "muted"}, "No data doctor output names this dataset (run: embodia doctor data " + ds.path + ")."));
  }
  let selectedRow = null;
  const rows = ds.episodes.map(e => [e.index, e.length, e.seconds, e.tasks.join(" | "), e.flag ? badge(e.flag) : ""]);
  epBox.append(table(["#", "frames", "s", "task", "doctor"], rows, {onclick: (i, tr) => {
    location.hash = route("dataset", {path, episode: ds.episodes[i].index});
  }}));
  $main.replaceChildren(...head, el("div", {class: "layout"}, epBox, detail));
  const want = params.has("episode") ? Number(params.get("episode")) : (ds.episodes.length ? ds.episodes[0].index : null);
  if (want === null) return;
  const i = ds.episodes.findIndex(e => e.index === want);
  if (i >= 0) {
    selectedRow = epBox.querySelectorAll("tbody tr")[i];
    selectedRow.classList.add("selected");
    selectedRow.scrollIntoView({block: "nearest"});
  }
  await showEpisode(detail, path, want);
}

async function showEpisode(box, path, episode) {
  const ep = await api("dataset/episode", {path, episode});
  const fps = ep.fps, n = ep.length;
  const frameLabel = el("span", {class: "muted"}, "");
  const playBtn = el("button", {type: "button"}, "play");
  const videos = ep.videos.map(v => {
    const video = el("video", {muted: true, playsInline: true, preload: "auto", "data-camera": v.camera});
    video.defaultMuted = true;
    // Several episodes share one mp4: start at this episode's from_timestamp (+ a quarter frame, so that
    // rounding never shows the previous episode's last frame).
    video.addEventListener("loadedmetadata", () => { video.currentTime = v.from + 0.25 / fps; }, {once: true});
    video.src = fileUrl(v.file);
    return {video, from: v.from, to: v.to, camera: v.camera};
  });
  const x = Array.from({length: Math.ceil(n / ((ep.state || ep.action || {stride: 1}).stride))},
    (_, i) => i * (ep.state || ep.action || {stride: 1}).stride);
  const plots = [];
  const plotBox = el("div", {});
  for (const [key, title] of [["state", "observation.state"], ["action", "action"]]) {
    if (!ep[key]) continue;
    const canvas = el("canvas", {class: "plot", "data-series": key});
    plotBox.append(el("h3", {}, title), canvas);
    plots.push({canvas, spec: {x, series: seriesOf(ep[key]), title: "frame"}});
  }
  const flagList = ep.flags.length ? [el("h3", {}, "Doctor flags in this episode"),
    el("ul", {class: "flags"}, ep.flags.map(f => el("li", {}, badge(f.severity), ` ${f.check}: frames ${f.frames.map(r => r.join("-")).join(", ")}: ${f.message}`)))] : [];
  box.replaceChildren(
    el("h2", {}, `Episode ${ep.index}`),
    el("p", {}, ep.tasks.map(t => el("q", {}, t))),
    el("div", {class: "videos"}, videos.map(v => el("figure", {}, v.video, el("figcaption", {}, v.camera)))),
    el("div", {class: "controls"}, playBtn, frameLabel),
    ...flagList, plotBox);
  const drawn = plots.map(p => linePlot(p.canvas, p.spec));
  if (!videos.length) { frameLabel.textContent = "no videos (image features are not played here)"; return; }

  const master = videos[0];
  let raf = 0, frame = 0;
  function frameOf(t) { return Math.min(n - 1, Math.max(0, Math.floor((t - master.from) * fps + 1e-6))); }
  function update() {
    const t = master.video.currentTime;
    if (!master.video.paused && t >= master.to - 0.5 / fps) seek(0, true);  // loop within the episode
    frame = frameOf(master.video.currentTime);
    for (const v of videos.slice(1)) {  // keep the other cameras on the master's clock
      const want = v.from + (master.video.currentTime - master.from);
      if (Math.abs(v.video.currentTime - want) > 1.5 / fps) v.video.currentTime = want;
    }
    frameLabel.textContent = `frame ${frame} / ${n - 1}, ${(frame / fps).toFixed(2)} s`;
    drawn.forEach(p => p.draw(frame));
  }
  function seek(f, keepPlaying) {
    for (const v of videos) v.video.currentTime = v.from + (f + 0.25) / fps;
    if (!keepPlaying) update();
  }
  function loop() { update(); raf = requestAnimationFrame(loop); }
  playBtn.addEventListener("click", () => {
    if (master.video.paused) {
      for (const v of videos) v.video.play().catch(() => {});
      playBtn.textContent = "pause";
      loop();
    } else {
      for (const v of videos) v.video.pause();
      playBtn.textContent = "play";
      cancelAnimationFrame(raf);
      update();
    }
  });
  master.video.addEventListener("seeked", update);
  plots.forEach((p, k) => p.canvas.addEventListener("click", ev => seek(Math.round(drawn[k].xAt(ev.clientX)))));
  cleanup.push(() => { cancelAnimationFrame(raf); videos.forEach(v => v.video.pause()); });
  update();
}

async function viewEval(params) {
  const ev = await api("eval", {path: params.get("path")});
  crumbs([{text: "index", href: "#/"}, {text: "eval " + ev.path}]);
  const ci = r => (r && r.ci95 && r.ci95[0] !== null) ? `${pct(r.ci95[0])} - ${pct(r.ci95[1])}` : "";
  const rateRow = (name, r, group) => [name, ...(group === undefined ? [] : [group]), r.successes, r.n, pct(r.success_rate), ci(r)];
  const o = ev.overall || {};
  const parts = [
    el("h1", {}, `Evaluation: ${ev.suite}`),
    el("p", {}, "Overall ", el("strong", {}, pct(o.success_rate)), ` (${o.successes}/${o.n}), Wilson 95 % CI ${ci(o)}; mean task success ${pct(ev.mean_task_success_rate)}. `,
      ev.report ? el("a", {href: fileUrl(ev.report)}, "HTML report") : ""),
    table(["task", "group", "successes", "episodes", "success", "95 % CI (Wilson)"],
      Object.entries(ev.tasks).map(([name, r]) => rateRow(name, r, r.group)), {caption: "Success by task"}),
    table(["group", "successes", "episodes", "success", "95 % CI (Wilson)"],
      Object.entries(ev.groups).map(([name, r]) => rateRow(name, r)), {caption: "Success by group"}),
  ];
  const failures = Object.entries(ev.failures || {});
  const measures = ev.measures || {};
  if (failures.length) parts.push(table(["task", "failed", "where they stopped", "how far off (medians)"],
    failures.map(([task, counts]) => [task, Object.values(counts).reduce((a, b) => a + b, 0),
      Object.entries(counts).map(([label, n]) => `${label} ${n}`).join(", "), measures[task] || ""]),
    {caption: "Why episodes failed"}));
  parts.push(table(null, Object.entries(ev.settings).filter(([, v]) => v !== null).map(([k, v]) => [k, v]), {caption: "Settings"}));
  const filmed = ev.episodes.filter(e => e.video);
  parts.push(el("h2", {}, `Rollout videos (${filmed.length} of ${ev.episodes.length} episodes)`));
  parts.push(el("div", {class: "videos"}, filmed.map(e => el("figure", {},
    el("video", {src: fileUrl(e.video), controls: true, muted: true, loop: true, playsInline: true, preload: "auto"}),
    el("figcaption", {}, badge(e.success ? "success" : "failed"), ` ${e.instruction} (seed ${e.seed}, ${e.steps} steps${e.failure ? ", stopped at: " + e.failure : ""})`)))));
  $main.replaceChildren(...parts);
}

async function viewRun(params) {
  const run = await api("run", {path: params.get("path")});
  crumbs([{text: "index", href: "#/"}, {text: "run " + run.path}]);
  const last = run.last || {};
  const parts = [el("h1", {}, `Training run: ${run.name}`),
    el("p", {}, run.last ? `step ${last.step}, loss ${fmt(last.loss)}, lr ${fmt(last.lr)}, ${fmt(last.samples_per_s)} samples/s, ${fmt(last.elapsed_s)} s elapsed`
      : "no metrics logged yet"),
    table(null, Object.entries(run.config).map(([k, v]) => [k, v]), {caption: "train_config.json"})];
  if (run.bad_lines) parts.push(el("p", {class: "muted"}, `${run.bad_lines} unreadable line(s) in metrics.jsonl skipped`));
  const plots = [];
  for (const [key, title, logY] of [["loss", "loss", true], ["lr", "learning rate", false], ["grad_norm", "gradient norm", true]]) {
    if (!run.curves[key] || run.curves[key].every(v => v === null)) continue;
    const canvas = el("canvas", {class: "plot", "data-series": key});
    parts.push(el("h3", {}, title + (logY ? " (log scale)" : "")), canvas);
    plots.push([canvas, {x: run.steps, series: [{name: key, values: run.curves[key]}], logY, title: "step"}]);
  }
  parts.push(el("h2", {}, `Checkpoints (${run.checkpoints.length})`));
  parts.push(run.checkpoints.length ? table(["checkpoint", "step", "complete", "size", "written", "files"],
    run.checkpoints.map(c => [c.name + (run.latest === c.name ? " (latest)" : ""), c.step, c.complete ? "yes" : "no",
      bytes(c.bytes), new Date(c.mtime * 1000).toLocaleString(), c.files.join(", ")]))
    : el("p", {class: "muted"}, "none yet"));
  $main.replaceChildren(...parts);
  for (const [canvas, spec] of plots) linePlot(canvas, spec);
}

// ------------------------------------------------------------------------------------------ router

// ------------------------------------------------------------------------------------- live (teleop)

// The cameras of a running loop (`embodia teleop`) as MJPEG streams an <img> plays, and its latest state.
async function viewLive() {
  const first = await api("live");
  crumbs([{text: "index", href: "#/"}, {text: "live"}]);
  const $status = el("p", {class: "muted"});
  const $state = el("div");
  const cams = el("div", {class: "videos"});
  const shown = new Set();
  function addCameras(names) {
    for (const cam of names) {
      if (shown.has(cam)) continue;
      shown.add(cam);
      const img = el("img", {class: "live", alt: cam + " camera", src: "/live/stream/" + encodeURIComponent(cam)});
      cleanup.push(() => { img.src = ""; });  // leaving the view closes the stream
      cams.append(el("figure", {}, img, el("figcaption", {}, cam)));
    }
  }
  function update(s) {
    addCameras(s.cameras);
    $status.textContent = (s.live ? "live" : "ended") + ` - ${s.ticks} ticks`
      + (s.cameras.length ? "" : " - no cameras on this robot");
    const rows = [];
    const n = Math.max((s.state || []).length, (s.action || []).length);
    for (let i = 0; i < n; i++) rows.push([i, fmt((s.state || [])[i]), fmt((s.action || [])[i])]);
    $state.replaceChildren(table(["joint", "measured", "sent"], rows));
    return s.live;
  }
  $main.replaceChildren(el("h1", {}, first.title), $status, cams, el("h2", {}, "state"), $state);
  if (!update(first)) return;
  const timer = setInterval(async () => {
    try { if (!update(await api("live"))) clearInterval(timer); } catch (e) { clearInterval(timer); }
  }, 250);
  cleanup.push(() => clearInterval(timer));
}

const VIEWS = {"": viewIndex, index: viewIndex, dataset: viewDataset, eval: viewEval, run: viewRun, live: viewLive};

async function render() {
  for (const f of cleanup) f();
  cleanup = [];
  redraws = [];
  showError("");
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, query] = [hash.split("?")[0], hash.split("?")[1] || ""];
  const view = VIEWS[name];
  document.body.dataset.view = name || "index";
  document.body.dataset.ready = "0";
  try {
    if (!view) throw new Error(`unknown view ${JSON.stringify(name)}`);
    await view(new URLSearchParams(query));
  } catch (e) {
    showError(e.message);
    $main.replaceChildren();
  }
  // Tests wait on these: `rendered` names the route the finished render was for, so a wait cannot be
  // satisfied by the previous view while the next one is still loading.
  document.body.dataset.rendered = location.hash || "#/";
  document.body.dataset.ready = "1";
}

window.addEventListener("hashchange", render);
window.addEventListener("resize", () => redraws.forEach(f => f()));
api("index").then(idx => { document.getElementById("root").textContent = idx.root; }).catch(() => {});
// After every script has run (teleop.js adds its view to VIEWS).
window.addEventListener("DOMContentLoaded", render);
