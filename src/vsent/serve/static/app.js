// vsent web page: send the picked or dropped images to /v1/predict and show each result.
// Plain JavaScript, no dependencies, so the page works offline.
"use strict";

const drop = document.getElementById("drop");
const input = document.getElementById("file-input");
const results = document.getElementById("results");
const statusLine = document.getElementById("status");
// the service's limits (from the model card): a large drop is sent as several requests
let limits = { max_images: 32, max_request_bytes: 64 * 1024 * 1024 };

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function loadCard() {
  const info = document.getElementById("model-info");
  try {
    const card = await (await fetch("/v1/model")).json();
    const arch = (card.model && card.model.name) || "model";
    const cv = card.metrics;
    // finetune --fold K: the accuracy on its held-out fold, of the scores served (fused or not)
    const held = cv && cv.held_out && cv.held_out[cv.evaluation];
    const acc = cv && cv.accuracy && typeof cv.accuracy.mean === "number"
      ? `, cross-validated accuracy ${(100 * cv.accuracy.mean).toFixed(1)} %`
      : held && typeof held.accuracy === "number"
        ? `, accuracy ${(100 * held.accuracy).toFixed(1)} % on held-out fold ${cv.held_out_fold}`
        : "";
    info.textContent = `${arch}${acc} (vsent ${card.vsent_version})`;
    if (card.limits) limits = card.limits;
    // an option this model cannot serve (e.g. no heat map for an exported model) is switched off
    for (const [name, ok] of Object.entries(card.request_options || {})) {
      const box = document.getElementById(`opt-${name}`);
      if (box && !ok) {
        box.checked = false;
        box.disabled = true;
        box.parentElement.title = `not available for this model`;
      }
    }
  } catch (err) {
    info.textContent = "model card unavailable";
  }
}

function showResult(file, row) {
  const item = el("li", "result");
  const img = el("img");
  img.alt = row.name;
  // the heat map overlay when asked for, else the picture itself (its object URL is released
  // once shown: the page keeps the decoded picture, not a second copy of the file per drop)
  if (row.heatmap) {
    img.src = `data:image/png;base64,${row.heatmap}`;
  } else {
    img.src = URL.createObjectURL(file);
    img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
    img.addEventListener("error", () => URL.revokeObjectURL(img.src), { once: true });
  }
  item.appendChild(img);
  const body = el("div", "body");
  body.appendChild(el("div", "name", row.name));
  if (row.error) {
    body.appendChild(el("div", "error", row.error));
  } else {
    const p = row.prob_positive;
    body.appendChild(el("div", `label ${row.label}`, row.label));
    const bar = el("div", "bar");
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "1");
    bar.setAttribute("aria-valuenow", String(p));
    const fill = el("span");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    bar.appendChild(fill);
    body.appendChild(bar);
    const prob = el("span", "prob", p.toFixed(3));
    prob.dataset.value = String(p);
    body.appendChild(el("div", "muted", "probability of positive: ")).appendChild(prob);
    if (row.heatmap_empty) {
      body.appendChild(el("div", "muted", "empty heat map: no region raises this label's score"));
    }
  }
  item.appendChild(body);
  results.prepend(item);
}

// Groups of files that each fit one request: at most max_images, and under max_request_bytes
// (less a margin for the multipart headers). A file above the limit on its own goes alone and
// gets the service's own 413 message.
function chunks(files) {
  const budget = limits.max_request_bytes - 64 * 1024;
  const out = [];
  let group = [], bytes = 0;
  for (const f of files) {
    if (group.length && (group.length >= limits.max_images || bytes + f.size > budget)) {
      out.push(group);
      group = [];
      bytes = 0;
    }
    group.push(f);
    bytes += f.size;
  }
  if (group.length) out.push(group);
  return out;
}

async function sendGroup(files) {
  const form = new FormData();
  files.forEach((f) => form.append("files", f, f.name));
  form.append("explain", document.getElementById("opt-explain").checked ? "true" : "false");
  form.append("oversample", document.getElementById("opt-oversample").checked ? "true" : "false");
  const resp = await fetch("/v1/predict", { method: "POST", body: form });
  let data;
  try {
    data = await resp.json();
  } catch (err) {
    return `error ${resp.status}: ${resp.statusText}`;
  }
  if (data.results) {
    // per-image errors (422 when every image failed) are shown on their own cards
    data.results.forEach((row, i) => showResult(files[i], row));
    return resp.ok ? "" : data.detail;
  }
  return `error ${resp.status}: ${data.detail || resp.statusText}`;
}

async function send(files) {
  // every file is sent, pictures or not: the service answers each one, e.g. "notes.txt
  // (part 1): cannot identify image file", where a filter here dropped it without a word
  files = Array.from(files);
  if (!files.length) return;
  const problems = [];
  let done = 0;
  for (const group of chunks(files)) {
    statusLine.textContent = `scoring ${files.length} image${files.length > 1 ? "s" : ""}` +
      (done ? ` (${done} done)` : "") + "…";
    try {
      const problem = await sendGroup(group);
      if (problem) problems.push(problem);
    } catch (err) {
      problems.push(`request failed: ${err}`);
    }
    done += group.length;
  }
  statusLine.textContent = problems.join("; ");
}

input.addEventListener("change", () => { send(input.files); input.value = ""; });
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  send(ev.dataTransfer.files);
});
drop.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); input.click(); }
});
loadCard();
