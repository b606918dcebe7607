"""GET /: one self-contained page (no CDN, no external assets: it works offline).

Upload an image or pick a sample scene; the page posts it to /predict (with `previews=true`) and
shows the input, each dense task's picture and the attributes side by side, with the latency.
"""

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>onepass</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #16181d; color: #e6e6e6; }
  header { padding: 14px 24px; background: #0f1115; border-bottom: 1px solid #2a2e37; }
  header h1 { margin: 0; font-size: 20px; }
  header p { margin: 2px 0 0; color: #9aa3b2; }
  main { padding: 16px 24px; }
  .controls { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin-bottom: 14px; }
  .samples { display: flex; gap: 8px; align-items: center; }
  .samples img { height: 56px; border: 2px solid #2a2e37; border-radius: 4px; cursor: pointer; }
  .samples img:hover { border-color: #6ea8fe; }
  #status { color: #9aa3b2; min-height: 1.4em; }
  #status.error { color: #ff8b8b; }
  #latency { color: #ffd37a; }
  .grid { display: flex; flex-wrap: wrap; gap: 12px; }
  figure { margin: 0; background: #0f1115; padding: 8px; border-radius: 6px; }
  figure img { display: block; max-width: 360px; width: 100%; image-rendering: auto; }
  figcaption { color: #9aa3b2; font-size: 13px; margin-top: 4px; }
  table { border-collapse: collapse; margin-top: 14px; }
  td, th { padding: 4px 10px; text-align: left; border-bottom: 1px solid #2a2e37; }
  .bar { display: inline-block; height: 10px; background: #6ea8fe; vertical-align: middle; margin-right: 6px; }
  .probs span { margin-right: 12px; white-space: nowrap; }
</style>
</head>
<body>
<header>
  <h1>onepass</h1>
  <p id="model">One forward pass: segmentation, depth, surface normals and image attributes.</p>
</header>
<main>
  <div class="controls">
    <label>Image: <input type="file" id="file" accept="image/*"></label>
    <div class="samples" id="samples"><span>or a sample scene:</span></div>
  </div>
  <div id="status">Choose an image.</div>
  <div id="latency"></div>
  <div class="grid" id="maps"></div>
  <table id="attributes"></table>
</main>
<script>
"use strict";
const statusBox = document.getElementById("status");
const mapsBox = document.getElementById("maps");
const attributesTable = document.getElementById("attributes");
const latencyBox = document.getElementById("latency");

function setStatus(text, isError) {
  statusBox.textContent = text;
  statusBox.className = isError ? "error" : "";
}

function figure(title, src, task) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.src = src;
  img.alt = title;
  img.className = "map";
  img.dataset.task = task;
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  fig.append(img, caption);
  return fig;
}

function showAttributes(attributes) {
  attributesTable.replaceChildren();
  if (!attributes) return;
  const head = attributesTable.insertRow();
  for (const text of ["attribute", "prediction", "probabilities"]) {
    const th = document.createElement("th");
    th.textContent = text;
    head.append(th);
  }
  for (const [group, value] of Object.entries(attributes)) {
    const row = attributesTable.insertRow();
    row.dataset.group = group;
    row.insertCell().textContent = group;
    const label = row.insertCell();
    label.textContent = value.label;
    label.className = "label";
    const probs = row.insertCell();
    probs.className = "probs";
    for (const [name, p] of Object.entries(value.probabilities)) {
      const item = document.createElement("span");
      const bar = document.createElement("i");
      bar.className = "bar";
      bar.style.width = Math.round(60 * p) + "px";
      item.append(bar, name + " " + p.toFixed(2));
      probs.append(item);
    }
  }
}

async function predict(blob, name) {
  setStatus("Running " + name + " ...", false);
  document.body.dataset.state = "running";
  const form = new FormData();
  form.append("image", blob, name);
  form.append("previews", "true");
  form.append("maps", "false");
  const started = performance.now();
  let response, body;
  try {
    response = await fetch("predict", { method: "POST", body: form });
    body = await response.json();
  } catch (error) {
    setStatus("Request failed: " + error, true);
    document.body.dataset.state = "error";
    return;
  }
  const roundTrip = performance.now() - started;
  if (!response.ok) {
    setStatus("Error " + response.status + ": " + (body.error || JSON.stringify(body)), true);
    document.body.dataset.state = "error";
    return;
  }
  mapsBox.replaceChildren(figure("input " + body.image.width + "x" + body.image.height, URL.createObjectURL(blob), "input"));
  for (const [task, png] of Object.entries(body.previews || {})) {
    mapsBox.append(figure(task, "data:image/png;base64," + png, task));
  }
  showAttributes(body.attributes);
  const t = body.timings_ms;
  latencyBox.textContent = "latency: " + roundTrip.toFixed(1) + " ms round trip; server " + t.total.toFixed(1) +
    " ms (decode " + t.decode.toFixed(1) + ", inference " + t.inference.toFixed(1) + ", encode " + t.encode.toFixed(1) + ")";
  setStatus(name + ": " + body.model.name + " " + body.model.version, false);
  document.body.dataset.state = "done";
}

document.getElementById("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) predict(file, file.name);
});

async function loadInfo() {
  try {
    const info = await (await fetch("info")).json();
    document.getElementById("model").textContent = info.model.name + " " + info.model.version + " — " +
      Object.keys(info.tasks).join(", ") + " — input " + info.input_size.join("x") + ", backend " + info.backend.name;
    const box = document.getElementById("samples");
    info.samples.forEach((path, i) => {
      const img = document.createElement("img");
      img.src = path;
      img.alt = "sample " + i;
      img.className = "sample";
      img.addEventListener("click", async () => {
        const blob = await (await fetch(path)).blob();
        predict(blob, "sample " + i);
      });
      box.append(img);
    });
  } catch (error) {
    setStatus("Could not reach the server: " + error, true);
  }
}
loadInfo();
</script>
</body>
</html>
"""
