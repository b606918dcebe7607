"""GET /: one self-contained page (no CDN, no external assets: it works offline).

Upload an image or pick a sample scene; the page posts it to /predict (with `previews=true`) and
shows the input, each task's picture with its key (`previews` and `legends`), every task's results
in words beside them (`text`: a section per task, the lines of its `describe`), and the latency.
Above them, the model card (from /info): what the model was trained on, what its answers are not
good for, and how to train your own. At 1280x800 the maps, their keys and the words all fit
without scrolling. The page knows no task: it shows what each section of the response holds.
"""

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>onepass</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #16181d; color: #e6e6e6; }
  header { padding: 10px 24px; background: #0f1115; border-bottom: 1px solid #2a2e37; }
  header h1 { margin: 0; font-size: 20px; display: inline; }
  header p { margin: 0 0 0 12px; color: #9aa3b2; display: inline; }
  #card { padding: 8px 24px; background: #1d1f26; border-bottom: 1px solid #2a2e37; font-size: 13px; color: #c5cbd6; }
  #card p { margin: 0; }
  #card .caveat { color: #ffd37a; font-weight: 600; }
  #card[data-data="synthetic"] { background: #2a2414; border-bottom-color: #4a3f1f; }
  #card code { background: #0f1115; padding: 0 4px; border-radius: 3px; }
  main { padding: 10px 24px; }
  .controls { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin-bottom: 6px; }
  .samples { display: flex; gap: 8px; align-items: center; }
  .samples img { height: 44px; border: 2px solid #2a2e37; border-radius: 4px; cursor: pointer; }
  .samples img:hover { border-color: #6ea8fe; }
  #status { color: #9aa3b2; min-height: 1.4em; display: inline-block; margin-right: 16px; }
  #status.error { color: #ff8b8b; }
  #latency { color: #ffd37a; display: inline-block; }
  .result { display: flex; gap: 16px; align-items: flex-start; margin-top: 6px; }
  /* 160px: the input and four pictures (three maps, the people) fit in one row beside the words at 1280 */
  .maps { flex: 1; display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 10px; }
  figure { margin: 0; background: #0f1115; padding: 8px; border-radius: 6px; }
  figure img.map { display: block; width: 100%; image-rendering: auto; }
  figcaption { color: #e6e6e6; font-size: 13px; margin-top: 4px; }
  .legend { font-size: 12px; color: #9aa3b2; margin-top: 4px; }
  .legend-title { margin-bottom: 2px; }
  .swatches { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 2px 10px; color: #e6e6e6; }
  .swatch { display: inline-block; width: 10px; height: 10px; border: 1px solid #9aa3b2; margin-right: 4px; }
  .colour-bar { height: 10px; margin: 0 6px; }
  .ticks { position: relative; height: 15px; margin: 0 6px; color: #e6e6e6; }
  .ticks span { position: absolute; transform: translateX(-50%); }
  .key { display: flex; gap: 8px; align-items: center; color: #e6e6e6; }
  .key img { width: 44px; height: 44px; flex: none; }
  aside { width: 290px; flex: none; background: #0f1115; border-radius: 6px; padding: 8px 12px; }
  aside.empty { display: none; }
  table { border-collapse: collapse; width: 100%; }
  td, th { padding: 4px 6px; text-align: left; border-bottom: 1px solid #2a2e37; vertical-align: top; }
  th.task { font-size: 15px; padding-top: 8px; }
  tr:first-child th.task { padding-top: 2px; }
  td.label { font-weight: 600; color: #ffd37a; }
</style>
</head>
<body>
<header>
  <h1>onepass</h1>
  <p id="model">One forward pass, every answer.</p>
</header>
<section id="card"></section>
<main>
  <div class="controls">
    <label>Image: <input type="file" id="file" accept="image/*"></label>
    <div class="samples" id="samples"><span>or a sample scene:</span></div>
  </div>
  <div><span id="status">Choose an image.</span><span id="latency"></span></div>
  <div class="result">
    <div class="maps" id="maps"></div>
    <aside id="text-box" class="empty"><table id="text"></table></aside>
  </div>
</main>
<script>
"use strict";
const statusBox = document.getElementById("status");
const mapsBox = document.getElementById("maps");
const textBox = document.getElementById("text-box");
const textTable = document.getElementById("text");
const latencyBox = document.getElementById("latency");

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text, isError) {
  statusBox.textContent = text;
  statusBox.className = isError ? "error" : "";
}

// A task's key, from the legend /predict sends with its preview (models/tasks/legends.py).
function legendElement(task, legend) {
  const box = element("div", "legend");
  box.dataset.task = task;
  box.dataset.kind = legend.kind;
  if (legend.kind === "picture") {
    const key = element("div", "key");
    const img = element("img");
    img.src = "data:image/png;base64," + legend.png;
    img.alt = legend.title;
    const words = element("div");
    words.append(element("div", "legend-title", legend.title), element("div", "", legend.note));
    key.append(img, words);
    box.append(key);
    return box;
  }
  box.append(element("div", "legend-title", legend.title));
  if (legend.kind === "swatches") {
    const list = element("ul", "swatches");
    for (const item of legend.items) {
      const entry = element("li");
      const swatch = element("i", "swatch");
      swatch.style.background = item.colour;
      entry.append(swatch, item.label);
      list.append(entry);
    }
    box.append(list);
  } else if (legend.kind === "colour_bar") {
    const bar = element("div", "colour-bar");
    bar.style.background = "linear-gradient(to right, " + legend.colours.join(", ") + ")";
    const ticks = element("div", "ticks");
    for (const tick of legend.ticks) {
      const label = element("span", "", tick.label);
      label.style.left = (100 * tick.at) + "%";
      ticks.append(label);
    }
    box.append(bar, ticks);
  }
  if (legend.note) box.append(element("div", "legend-note", legend.note));
  return box;
}

function figure(title, src, task, legend) {
  const fig = element("figure");
  const img = element("img", "map");
  img.src = src;
  img.alt = title;
  img.dataset.task = task;
  fig.append(img, element("figcaption", "", title));
  if (legend) fig.append(legendElement(task, legend));
  return fig;
}

// Every task's results in words (the `text` /predict sends with the previews: each task's
// `describe`), a section per task. A line "name: value" shows as two cells, its name in data-group.
function showText(text) {
  textTable.replaceChildren();
  const sections = Object.entries(text || {});
  textBox.className = sections.length ? "" : "empty";
  for (const [task, lines] of sections) {
    const head = textTable.insertRow();
    head.dataset.task = task;
    const heading = element("th", "task", task);
    heading.colSpan = 2;
    head.append(heading);
    for (const line of lines) {
      const row = textTable.insertRow();
      row.dataset.task = task;
      const split = line.indexOf(": ");
      if (split > 0) {
        row.dataset.group = line.slice(0, split);
        row.insertCell().textContent = line.slice(0, split);
        row.append(element("td", "label", line.slice(split + 2)));
      } else {
        const cell = element("td", "label", line);
        cell.colSpan = 2;
        row.append(cell);
      }
    }
  }
}

// Text with `code` spans as <code> elements (built as nodes: the text is never parsed as HTML).
function withCode(tag, className, text) {
  const node = element(tag, className);
  text.split("`").forEach((piece, i) => node.append(i % 2 ? element("code", "", piece) : piece));
  return node;
}

function showCard(card) {
  const box = document.getElementById("card");
  box.dataset.data = card.data;
  const trained = element("p");
  trained.append(element("b", "", "Trained on "), card.trained_on + ".");
  if (card.evaluated_on) trained.append(" ", element("b", "", "Evaluated on "), card.evaluated_on + ".");
  box.replaceChildren(trained, withCode("p", "caveat", card.caveat), withCode("p", "train", card.train_your_own));
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
  const legends = body.legends || {};
  for (const [task, png] of Object.entries(body.previews || {})) {
    mapsBox.append(figure(task, "data:image/png;base64," + png, task, legends[task]));
  }
  showText(body.text);
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
    showCard(info.card);
    const box = document.getElementById("samples");
    info.samples.forEach((path, i) => {
      const img = element("img", "sample");
      img.src = path;
      img.alt = "sample " + i;
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
