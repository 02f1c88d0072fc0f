// The studio page: draws the film from GET /api/film, sends the director's choices to the API.
// Every text from the story goes in through textContent (never as HTML); no inline handlers (the CSP forbids them).
"use strict";

const token = document.querySelector('meta[name="storyforge-token"]').content;
const videos = new Map(); // media address -> its <video>, kept across redraws so playback goes on
let used = new Set(); // the addresses the last redraw used (the others are let go)
// a seam's stills load only when they scroll into view, each by a byte range of the cut (not the whole film)
const lazy = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    const still = entry.target;
    lazy.unobserve(still);
    still.src = still.dataset.src;
  }
});
let film = null; // the last state drawn
let pendingDraw = null; // a state that arrived while a note was being written

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

async function call(path, body) {
  const options = { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const answer = await fetch(path, options);
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(data.error || `${answer.status} ${answer.statusText}`);
  return data;
}

async function act(path, body) {
  try {
    await call(path, body);
    showError(null);
  } catch (error) {
    showError(error.message);
  }
  await refresh();
  await refreshWork();
}

function showError(message) {
  let box = document.getElementById("error");
  if (!message) { if (box) box.remove(); return; }
  if (!box) {
    box = el("div", { id: "error", class: "problems", role: "alert" });
    document.getElementById("problems").after(box);
  }
  box.textContent = message;
}

function frameTime(frame) { return (frame + 0.5) / film.fps; }

function video(url, extra = {}) {
  used.add(url);
  let node = videos.get(url);
  if (!node) {
    node = el("video", { controls: true, preload: "metadata", playsinline: true, src: url, ...extra });
    // show the first frame (not a black box) before anyone presses play
    node.addEventListener("loadedmetadata", () => { if (node.currentTime === 0) node.currentTime = 0.001; }, { once: true });
    videos.set(url, node);
  }
  return node;
}

// -- the cut: player, markers, timeline -------------------------------------------------------------------

function drawCut(state) {
  const player = document.getElementById("film");
  if (state.film && player.getAttribute("src") !== state.film) player.src = state.film;
  if (!state.film && player.hasAttribute("src")) { player.removeAttribute("src"); player.load(); }
  const markers = document.getElementById("markers");
  markers.replaceChildren();
  const total = Math.max(1, state.total_frames);
  const seek = (frame) => () => { if (player.src) { player.pause(); player.currentTime = frameTime(frame); } };
  for (const shot of state.shots) {
    markers.append(el("button", {
      type: "button", class: "shot-marker", text: shot.id, title: `${shot.id} at ${shot.timecode}`,
      "aria-label": `seek to ${shot.id}`, "data-frame": shot.start_frame,
      style: null, onclick: seek(shot.start_frame),
    }));
    for (const seam of shot.seams) {
      markers.append(el("button", {
        type: "button", class: "seam", title: `${seam.kind} seam at ${seam.timecode}`,
        "aria-label": `seek to the ${seam.kind} seam of ${shot.id} at ${seam.timecode}`, "data-frame": seam.frame,
        onclick: seek(seam.frame),
      }));
    }
  }
  for (const button of markers.children) { // placed by script (the CSP allows no inline style attributes)
    button.style.left = `${(100 * Number(button.dataset.frame)) / total}%`;
    if (button.classList.contains("shot-marker")) {
      const shot = state.shots.find((s) => s.start_frame === Number(button.dataset.frame) && s.id === button.textContent);
      if (shot) button.style.width = `calc(${(100 * shot.frames) / total}% - 2px)`;
    }
  }
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren();
  let scene = null;
  for (const shot of state.shots) {
    if (shot.scene !== scene) {
      scene = shot.scene;
      timeline.append(el("li", { class: "scene", text: scene }));
    }
    const transition = shot.transition.type + (shot.transition.frames ? ` ${shot.transition.frames}f` : "");
    const seams = el("div", { class: "seams" });
    for (const seam of shot.seams) seams.append(seamView(state, seam));
    timeline.append(el("li", { "data-shot": shot.id },
      el("button", { type: "button", text: shot.timecode, "aria-label": `seek to ${shot.id}`,
        onclick: seek(shot.start_frame) }),
      el("a", { href: `#shot-${shot.id}`, text: shot.id }),
      el("span", { text: shot.kind + (shot.after ? ` of ${shot.after}` : "") }),
      el("span", { text: `${transition} · ${shot.frames} frames` }),
      seams,
      el("span", { class: `state ${shot.state}`, text: stateText(shot) })));
  }
}

function seamView(state, seam) {
  // the frames on both sides of the seam, from the cut itself, and its numbers
  const box = el("div", { class: "seam-view", title: `${seam.kind} seam at frame ${seam.frame}` });
  if (state.film) {
    for (const frame of [seam.frame - 1, seam.frame]) {
      const name = `${state.film}#frame${frame}`;
      used.add(name);
      let still = videos.get(name);
      if (!still) {
        still = el("video", { preload: "metadata", muted: true, "data-src": state.film, "aria-label": `frame ${frame}` });
        still.addEventListener("loadedmetadata", () => { still.currentTime = frameTime(frame); }, { once: true });
        lazy.observe(still);
        videos.set(name, still);
      }
      box.append(still);
    }
  }
  const numbers = [`${seam.timecode} ${seam.kind}`];
  if (seam.jump !== null && seam.jump !== undefined) numbers.push(`jump ${Number(seam.jump).toFixed(2)}`);
  if (seam.color_shift !== null && seam.color_shift !== undefined) numbers.push(`color_shift ${Number(seam.color_shift).toFixed(1)}`);
  if (seam.intended) numbers.push("intended");
  if (seam.jump === null) numbers.push("not scored");
  if (seam.advice) numbers.push(seam.advice);
  box.append(el("span", { class: seam.visible ? "loud" : "", text: numbers.join(" · ") }));
  return box;
}

function stateText(shot) {
  if (shot.state === "current") return "in the cut";
  if (shot.state === "cut") return `take ${shot.pick} not cut yet`;
  return "needs a render";
}

// -- shots and takes -------------------------------------------------------------------------------------

function drawShots(state) {
  const shots = document.getElementById("shots");
  const open = new Set([...shots.querySelectorAll(".shot.show-rejected")].map((s) => s.dataset.shot));
  shots.replaceChildren(...state.shots.map((shot) => drawShot(state, shot, open.has(shot.id))));
  shots.style.setProperty("--aspect", `${state.width} / ${state.height}`);
}

function drawShot(state, shot, showRejected) {
  const rejected = shot.takes.filter((t) => t.rejected).length;
  const article = el("article", { class: `shot${showRejected ? " show-rejected" : ""}`, id: `shot-${shot.id}`,
    "data-shot": shot.id });
  const transition = shot.transition.type + (shot.transition.frames ? ` ${shot.transition.frames}f` : "");
  article.append(el("header", {},
    el("h2", { text: shot.id }),
    el("span", { class: "meta", text: `${shot.timecode} · ${shot.kind} · ${transition} · ${shot.frames} frames · `
      + `${shot.takes.length} take${shot.takes.length === 1 ? "" : "s"} · ${state.story}:${shot.line}` }),
    el("span", { class: `state ${shot.state}`, text: stateText(shot) })));
  article.append(el("p", { class: "prompt", text: shot.prompt }));
  if (shot.keyframes && shot.keyframes.length) article.append(drawKeyframes(shot));
  else if (shot.keyframe) { // the one start picture every take of the shot renders from
    article.append(el("div", { class: "keyframes" }, el("figure", { class: "picked", "data-shot": shot.id,
      "data-keyframe": 1 }, el("img", { src: shot.keyframe, alt: `start picture of ${shot.id}` }),
    el("figcaption", { text: "start picture" }))));
  }
  const takes = el("div", { class: "takes" });
  const controls = el("div", { class: "controls", role: "group", "aria-label": `compare the takes of ${shot.id}` });
  // the takes on screen (a rejected take, hidden, is left where it is)
  const playing = () => [...takes.querySelectorAll(".take video")].filter((v) => v.offsetParent !== null);
  const step = (frames) => () => {
    for (const v of playing()) { v.pause(); v.currentTime = Math.max(0, v.currentTime + frames / state.fps); }
  };
  const scrub = el("input", { type: "range", min: 0, max: 1000, value: 0, "aria-label": `scrub every take of ${shot.id}` });
  scrub.addEventListener("input", () => {
    for (const v of playing()) if (v.duration) { v.pause(); v.currentTime = (scrub.value / 1000) * v.duration; }
  });
  controls.append(
    el("button", { type: "button", text: "▶ Play in step", onclick: () => {
      const list = playing();
      const at = list.length ? list[0].currentTime : 0;
      for (const v of list) { v.currentTime = at; v.play().catch(() => {}); }
    } }),
    el("button", { type: "button", text: "❚❚ Pause", onclick: () => playing().forEach((v) => v.pause()) }),
    el("button", { type: "button", text: "◀ frame", "aria-label": "one frame back", onclick: step(-1) }),
    el("button", { type: "button", text: "frame ▶", "aria-label": "one frame on", onclick: step(1) }),
    scrub,
    el("button", { type: "button", class: "another", text: "Another take", onclick: () => act("/api/take", { shot: shot.id }) }),
  );
  if (rejected) {
    controls.append(el("button", { type: "button", text: `${showRejected ? "Hide" : "Show"} ${rejected} rejected`,
      onclick: () => { article.classList.toggle("show-rejected"); } }));
  }
  article.append(controls);
  for (const take of shot.takes) takes.append(drawTake(state, shot, take));
  article.append(takes);
  return article;
}

function drawTake(state, shot, take) {
  const picked = take.take === shot.pick;
  const figure = el("figure", { class: `take${picked ? " picked" : ""}${take.rejected ? " rejected" : ""}`,
    "data-shot": shot.id, "data-take": take.take });
  if (take.url) {
    const player = video(take.url);
    figure.append(player);
  } else {
    figure.append(el("div", { class: "empty", text: take.status === "not rendered" ? "not rendered yet" : take.status }));
  }
  const facts = [`take ${take.take}`, `seed ${take.seed}`, take.status];
  if (take.status === "rendered" && take.seconds !== null) facts.push(`${take.seconds}s to render`);
  for (const score of take.scores || []) {
    facts.push(`${score.kind} seam: jump ${Number(score.jump).toFixed(2)}`
      + (score.color_shift === null ? "" : ` · color_shift ${Number(score.color_shift).toFixed(1)}`)
      + (score.visible ? " (likely seen)" : ""));
  }
  const note = el("textarea", { "aria-label": `note on take ${take.take} of ${shot.id}`, placeholder: "a note on this take" });
  note.value = take.note || "";
  const row = el("div", { class: "row" },
    el("button", { type: "button", class: picked ? "primary" : "", disabled: picked,
      "aria-label": `Pick take ${take.take} of ${shot.id}`, text: picked ? "✓ Picked" : `Pick take ${take.take}`,
      onclick: () => act("/api/pick", { shot: shot.id, take: take.take }) }),
    el("button", { type: "button", text: take.rejected ? "Restore" : "Reject",
      "aria-label": `${take.rejected ? "Restore" : "Reject"} take ${take.take} of ${shot.id}`,
      onclick: () => act("/api/reject", { shot: shot.id, take: take.take, rejected: !take.rejected }) }),
    el("button", { type: "button", text: "Full screen", "aria-label": `take ${take.take} full screen`,
      onclick: () => { const v = figure.querySelector("video"); if (v) v.requestFullscreen().catch(() => {}); } }),
    el("button", { type: "button", text: "Save note", "aria-label": `save the note on take ${take.take} of ${shot.id}`,
      onclick: () => act("/api/note", { shot: shot.id, take: take.take, text: note.value }) }));
  note.addEventListener("blur", () => {
    if (note.value !== (take.note || "")) act("/api/note", { shot: shot.id, take: take.take, text: note.value });
    else if (pendingDraw) { const next = pendingDraw; pendingDraw = null; draw(next); }
  });
  figure.append(el("figcaption", {},
    el("div", { class: "row", text: facts.join(" · ") }),
    row, note,
    el("code", { class: "cmd", title: "the same pick from a terminal", text: take.command })));
  return figure;
}

function drawKeyframes(shot) {
  const box = el("div", { class: "keyframes", role: "group", "aria-label": `start pictures of ${shot.id}` });
  for (const candidate of shot.keyframes) {
    const picked = candidate.number === shot.keyframe_pick;
    box.append(el("figure", { class: picked ? "picked" : "", "data-shot": shot.id, "data-keyframe": candidate.number },
      candidate.url ? el("img", { src: candidate.url, alt: `start picture ${candidate.number} of ${shot.id}` })
        : el("div", { class: "empty", text: "not made yet" }),
      el("figcaption", {}, el("button", { type: "button", disabled: picked,
        "aria-label": `Pick start picture ${candidate.number} of ${shot.id}`,
        text: picked ? "✓ starts the video" : `Pick start picture ${candidate.number}`,
        onclick: () => act("/api/pick", { shot: shot.id, keyframe: candidate.number }) }),
      el("code", { class: "cmd", text: candidate.command }))));
  }
  return box;
}

// -- the whole page ----------------------------------------------------------------------------------------

function draw(state) {
  const active = document.activeElement;
  if (active && active.tagName === "TEXTAREA" && document.getElementById("shots").contains(active)) {
    pendingDraw = state; // redrawn when the note is left, so typing is never lost
    return;
  }
  film = state;
  document.title = `${state.title || "storyforge"} · studio`;
  document.getElementById("title").textContent = state.title || "storyforge studio";
  if (state.fps) {
    document.getElementById("facts").textContent = [state.story, `${state.width}×${state.height}`, `${state.fps} fps`,
      `${state.total_frames} frames`, state.timecode, state.backend ? `last render: ${state.backend}` : "not rendered yet"]
      .join(" · ");
  }
  const problems = document.getElementById("problems");
  problems.hidden = !state.problems.length;
  problems.replaceChildren();
  if (state.problems.length) {
    problems.append(el("strong", { text: "The story does not validate; the page shows its last good plan." }),
      el("ul", {}, ...state.problems.map((p) => el("li", { "data-line": p.line, text: p.text }))));
  }
  drawBanner(state);
  document.getElementById("render").disabled = !state.to_render || !state.to_render.length;
  document.getElementById("cut").disabled = !state.to_cut || !state.to_cut.length || state.to_render.length > 0;
  document.getElementById("cut").title = state.to_render && state.to_render.length
    ? `first render ${state.to_render.join(", ")}` : "cut the film from the picked takes; renders nothing";
  used = new Set();
  if (state.shots.length) { drawCut(state); drawShots(state); }
  for (const [name, node] of videos) {
    if (!used.has(name)) { node.removeAttribute("src"); node.load(); videos.delete(name); } // frees the decoder
  }
}

function drawBanner(state) {
  const banner = document.getElementById("stale");
  banner.replaceChildren();
  if (!state.stale || !state.shots.length) { banner.hidden = true; return; }
  banner.hidden = false;
  const older = state.shots.filter((s) => s.state !== "current").map((s) => s.id);
  const text = state.film
    ? `The film on screen is older than the picks: ${older.join(", ")} ${older.length === 1 ? "is" : "are"} not in it as picked.`
    : `There is no cut of the current picks yet (${older.join(", ")}).`;
  banner.append(el("span", { text }));
  if (state.to_render.length) {
    banner.append(el("span", { text: `To render: ${state.to_render.join(", ")}.` }),
      el("button", { type: "button", text: "Render what changed", onclick: () => act("/api/render", {}) }));
  } else {
    banner.append(el("button", { type: "button", class: "primary", text: "Cut again", onclick: () => act("/api/cut", {}) }));
  }
}

function drawWork(status) {
  const box = document.getElementById("work");
  box.replaceChildren(...status.tasks.slice().reverse().map((task) => {
    const line = el("div", { class: `task ${task.state}`, "data-task": task.id, "data-state": task.state });
    const p = task.progress || {};
    let text = `${task.label}: ${task.state}`;
    if (task.state === "running" && p.job) text += ` — ${p.job} (${p.index}/${p.count})`;
    if (task.state === "running" && p.waiting) text += ` — ${p.waiting}`;
    if (task.seconds !== null && task.seconds !== undefined) text += ` in ${task.seconds}s`;
    if (task.message) text += ` — ${task.message}`;
    line.append(el("span", { text }));
    if (task.state === "running" && p.total) line.append(el("progress", { max: p.total, value: p.step || 0 }));
    return line;
  }));
}

let lastVersion = null;
async function refresh() {
  try {
    const state = await call("/api/film");
    if (state.version !== lastVersion || pendingDraw) { lastVersion = state.version; draw(state); }
  } catch (error) {
    showError(`the studio does not answer (${error.message}); is it still running?`);
  }
}

async function refreshWork() {
  try { drawWork(await call("/api/work")); } catch (error) { /* refresh() says so */ }
}

document.getElementById("render").addEventListener("click", () => act("/api/render", {}));
document.getElementById("cut").addEventListener("click", () => act("/api/cut", {}));
refresh();
refreshWork();
setInterval(refresh, 1000);
setInterval(refreshWork, 700);
