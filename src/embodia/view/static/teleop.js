// embodia view: the teleoperation page (#/teleop) of `embodia teleop --sim`: drive the simulated SO-101's
// gripper with the keyboard or a gamepad, watch both cameras live, see the task's success predicate lit,
// and keep or drop each episode. Everything goes through the web API of src/embodia/view/teleop.py, the
// same a script uses. Loaded after viewer.js (its helpers el, api, table, crumbs, cleanup).
"use strict";

const TELEOP_PERIOD_MS = 50;  // how often held keys and sticks are sent (the server stops after 0.5 s of silence)

async function teleopPost(path, body) {
  const res = await fetch("/api/teleop/" + path, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch (e) { /* fall through */ }
  if (!res.ok) throw new Error((data && data.error) || (res.status + " " + res.statusText));
  return data;
}

// The command the held keys and the first gamepad ask for: {move: [x, y, z], pitch, roll, gripper}.
function teleopCommand(held, keys, pad, gp) {
  const v = {x: 0, y: 0, z: 0, pitch: 0, roll: 0};
  for (const k of keys) if (k.axis && held.has(k.key)) v[k.axis] += k.sign;
  let gripper = null;
  if (gp) {
    for (const [axis, [i, sign]] of Object.entries(pad.axes)) {
      const a = gp.axes[i] || 0;
      if (Math.abs(a) > pad.deadzone) v[axis] += sign * a;
    }
    const pressed = i => gp.buttons[i] && gp.buttons[i].pressed;
    if (pressed(pad.buttons["pitch+"])) v.pitch += 1;
    if (pressed(pad.buttons["pitch-"])) v.pitch -= 1;
    if (pressed(pad.buttons.open)) gripper = "open";
    if (pressed(pad.buttons.close)) gripper = "close";
  }
  const clip = x => Math.max(-1, Math.min(1, x));
  return {move: [clip(v.x), clip(v.y), clip(v.z)], pitch: clip(v.pitch), roll: clip(v.roll), gripper};
}

async function viewTeleop() {
  const first = await api("teleop");
  crumbs([{text: "index", href: "#/"}, {text: "teleoperation"}]);
  const keys = first.keys, pad = first.gamepad;
  const $instruction = el("h1", {id: "instruction"});
  const $success = el("span", {id: "success-light", class: "badge"});
  const $reach = el("span", {id: "reach", class: "badge"});
  const $rec = el("span", {id: "rec-state", class: "badge"});
  const $info = el("p", {class: "muted", id: "teleop-info"});
  const $saved = el("p", {class: "muted", id: "saved"});
  const $pad = el("p", {class: "muted", id: "gamepad"}, "no gamepad (press a button on one to use it)");
  const cams = el("div", {class: "videos"});
  for (const cam of ["front", "wrist"]) {
    const img = el("img", {class: "live teleop", alt: cam + " camera", src: "/live/stream/" + cam});
    cleanup.push(() => { img.src = ""; });
    cams.append(el("figure", {}, img, el("figcaption", {}, cam)));
  }
  const button = (id, text, action) => el("button", {id, onclick: () => episode(action)}, text);
  const $start = button("btn-start", "start recording", "toggle");
  const controls = el("div", {class: "controls"}, button("btn-new", "new scene", "new"), $start,
                      button("btn-discard", "discard", "discard"));
  const keyRows = keys.map(k => [el("kbd", {}, k.label), k.does]);
  $main.replaceChildren($instruction,
    el("p", {}, "success: ", $success, " ", "reach: ", $reach, " ", $rec),
    cams, controls, $info, $saved,
    el("h2", {}, "keys (directions are the robot's: forward is away from its base)"), table(["key", "does"], keyRows),
    el("p", {class: "muted"}, "gamepad: " + pad.help), $pad);

  let state = first, recording = first.recording;
  function update(s) {
    state = s;
    recording = s.recording;
    $instruction.textContent = s.instruction;
    $success.textContent = s.success ? "achieved" : "not yet";
    $success.className = "badge " + (s.success ? "success" : "SKIP");
    $success.title = s.success_rule;
    $reach.textContent = s.control.reachable ? "ok" : "out of reach";
    $reach.className = "badge " + (s.control.reachable ? "PASS" : "FAIL");
    $rec.textContent = s.recording ? `recording (${s.frames} frames)` : "not recording";
    $rec.className = "badge " + (s.recording ? "WARN" : "SKIP");
    $start.textContent = s.recording ? "save" : "start recording";
    const t = s.control.target_m.map(x => x.toFixed(3)).join(", ");
    $info.textContent = `target ${t} m, gripper ${s.control.gripper}; scene seed ${s.seed}; `
      + `${s.timing.ticks} ticks, ${s.timing.ticks_missed} missed`;
    const last = s.last_saved;
    $saved.textContent = `${s.saved} saved, ${s.discarded} discarded` + (s.dataset ? ` into ${s.dataset}` : " (no --record dataset)")
      + (last ? `; last: episode ${last.episode}, ${last.frames} frames, ${last.success ? "success" : "no success"}` : "");
    document.body.dataset.teleopTick = String(s.ticks);
  }
  async function episode(action) {
    if (action === "toggle") action = recording ? "save" : "start";
    try { update(await teleopPost("episode", {action})); showError(""); } catch (e) { showError(e.message); }
  }

  const held = new Set();
  const keyOf = e => (e.key.length === 1 ? e.key.toLowerCase() : e.key);
  const bound = new Map(keys.map(k => [k.key, k]));
  let gripper = null, lastSent = "", padIndex = null;
  function onDown(e) {
    if (e.target && ["INPUT", "TEXTAREA"].includes(e.target.tagName)) return;
    const k = bound.get(keyOf(e));
    if (!k) return;
    e.preventDefault();
    if (e.repeat) return;
    if (k.axis) held.add(k.key);
    else if (k.gripper) gripper = k.gripper;
    else if (k.episode) episode(k.episode);
    send();
  }
  function onUp(e) { held.delete(keyOf(e)); send(); }
  function onBlur() { held.clear(); send(); }  // a key released elsewhere must not keep the arm moving
  const padButtons = {};
  function gamepad() {
    const pads = navigator.getGamepads ? Array.from(navigator.getGamepads()).filter(Boolean) : [];
    const gp = pads.length ? pads[0] : null;
    if (gp && padIndex !== gp.index) { padIndex = gp.index; $pad.textContent = "gamepad: " + gp.id; }
    if (gp) {  // episode buttons act on press, not while held
      for (const [name, action] of [["toggle", "toggle"], ["discard", "discard"], ["new", "new"]]) {
        const b = gp.buttons[pad.buttons[name]], now = !!(b && b.pressed);
        if (now && !padButtons[name]) episode(action);
        padButtons[name] = now;
      }
    }
    return gp;
  }
  async function send() {
    const cmd = teleopCommand(held, keys, pad, gamepad());
    if (gripper) { cmd.gripper = cmd.gripper || gripper; gripper = null; }
    const moving = cmd.move.some(x => x) || cmd.pitch || cmd.roll;
    const text = JSON.stringify(cmd);
    if (!moving && !cmd.gripper && text === lastSent) return;  // idle: nothing new to say
    lastSent = text;
    try { await teleopPost("command", cmd); } catch (e) { showError(e.message); }
  }
  window.addEventListener("keydown", onDown);
  window.addEventListener("keyup", onUp);
  window.addEventListener("blur", onBlur);
  const sender = setInterval(send, TELEOP_PERIOD_MS);
  const poller = setInterval(async () => { try { update(await api("teleop")); } catch (e) { /* ended */ } }, 100);
  cleanup.push(() => {
    window.removeEventListener("keydown", onDown);
    window.removeEventListener("keyup", onUp);
    window.removeEventListener("blur", onBlur);
    clearInterval(sender);
    clearInterval(poller);
  });
  update(first);
}

VIEWS.teleop = viewTeleop;
