// The flowers page: take a photo (file, camera, drop, paste, sample) or an image URL,
// send it to POST /predict like any other client, and show the top-5 species as bars.
// Everything the service says reaches the page through textContent, never as HTML.

const PREDICT_URL = new URL("../predict", import.meta.url); // beside /web/, under any stage prefix
const TOP_K = 5;
const MAX_SIDE = 1024; // px; keeps uploads small and far under the 10 MB payload limit
const MAX_UPLOAD_BYTES = 10 * 1024 * 1024; // the API's limit, for files sent as they are
const JPEG_QUALITY = 0.9;
const TIMEOUT_MS = 40000; // above the API's own 29 s integration timeout

// What to tell a person for each of the service's error codes (tests/contract/api.schema.json).
const ERRORS = {
  payload_too_large: ["This image is too large.", "Try a smaller file (the limit is 10 MB)."],
  undecodable_image: ["This file could not be read as an image.", "It may be damaged or incomplete. Try another photo."],
  image_too_large: ["This image has too many pixels to process.", "Try a smaller version of it."],
  unsupported_media_type: ["This is not an image type the service can read.", "Use a JPEG, PNG, WebP, GIF, BMP or TIFF image."],
  forbidden_url: ["That address can't be used.", "Only public http:// and https:// addresses are fetched; private and local addresses are refused."],
  upstream_error: ["The image at that address could not be downloaded.", "Check the address, or save the image and upload it instead."],
  upstream_timeout: ["The site with that image took too long to answer.", "Try again, or save the image and upload it instead."],
  rate_limited: ["Too many requests right now.", "Wait a moment and try again."],
  integration_timeout: ["The service took too long to answer.", "Try again in a moment."],
  bad_request: ["The service could not use this request.", ""],
  internal_error: ["Something went wrong on the service's side.", "Try again in a moment."],
};
const NETWORK_ERROR = ["Could not reach the service.", "Check your connection and try again."];
const TIMEOUT_ERROR = ["The service did not answer in time.", "Try again in a moment."];

const $ = (id) => document.getElementById(id);
const ui = {
  result: $("result"),
  status: $("status"),
  detail: $("detail"),
  predictions: $("predictions"),
  meta: $("meta"),
  figure: $("preview-figure"),
  preview: $("preview"),
  caption: $("preview-caption"),
  drop: $("drop"),
  file: $("file"),
  camera: $("camera"),
  urlForm: $("url-form"),
  url: $("url"),
};

let current = null; // the AbortController of the request in flight
let previewUrl = null;

// ---- intake ---------------------------------------------------------------------------

for (const input of [ui.file, ui.camera]) {
  input.addEventListener("change", () => {
    const [file] = input.files;
    input.value = ""; // choosing the same file again fires change again
    if (file) classifyFile(file, file.name);
  });
}

ui.urlForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const url = ui.url.value.trim();
  if (!url) {
    showError(["Enter the address of an image first.", "For example https://example.com/rose.jpg"], "empty_url");
    ui.url.focus();
    return;
  }
  classifyUrl(url);
});

for (const button of document.querySelectorAll("button.sample")) {
  button.addEventListener("click", () => classifySample(button));
}

// Dropping anywhere on the page works; the drop zone lights up while something is dragged over.
let dragDepth = 0;
document.addEventListener("dragenter", (event) => {
  if (!carriesInput(event.dataTransfer)) return;
  event.preventDefault();
  dragDepth += 1;
  ui.drop.classList.add("dragging");
});
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) ui.drop.classList.remove("dragging");
});
document.addEventListener("dragover", (event) => {
  if (carriesInput(event.dataTransfer)) event.preventDefault(); // allows the drop
});
document.addEventListener("drop", (event) => {
  if (!carriesInput(event.dataTransfer)) return; // e.g. text dropped into the URL field
  event.preventDefault(); // never let the browser navigate to the dropped file
  dragDepth = 0;
  ui.drop.classList.remove("dragging");
  takeTransfer(event.dataTransfer, "Dropped");
});

document.addEventListener("paste", (event) => {
  const target = event.target;
  const typing = target instanceof HTMLInputElement && target.type !== "file";
  const file = imageFile(event.clipboardData);
  if (file) {
    event.preventDefault();
    classifyFile(file, "Pasted image");
  } else if (!typing) {
    const text = event.clipboardData?.getData("text/plain")?.trim() ?? "";
    if (/^https?:\/\/\S+$/i.test(text)) {
      event.preventDefault();
      ui.url.value = text;
      classifyUrl(text);
    }
  }
});

function carriesInput(transfer) {
  return Boolean(transfer) && [...transfer.types].some((t) => t === "Files" || t === "text/uri-list");
}

function imageFile(transfer) {
  if (!transfer) return null;
  return [...transfer.files].find((f) => f.type.startsWith("image/") || f.type === "") ?? null;
}

function takeTransfer(transfer, what) {
  if (!transfer) return;
  const file = imageFile(transfer) ?? transfer.files[0];
  if (file) {
    classifyFile(file, file.name || `${what} image`);
    return;
  }
  const url = (transfer.getData("text/uri-list") || "").split(/\r?\n/).find((line) => line && !line.startsWith("#"));
  if (url) {
    ui.url.value = url.trim();
    classifyUrl(url.trim());
  }
}

async function classifySample(button) {
  const path = button.dataset.sample;
  const signal = begin("Loading the sample photo…");
  try {
    // Accept: image/jpeg, so API Gateway returns the bytes (not base64 text): it decodes
    // a binary response only when the request accepts one of the API's binary media types.
    const response = await fetch(new URL(path, document.baseURI), { headers: { Accept: "image/jpeg" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    if (signal.aborted) return; // something newer was chosen meanwhile
    await classifyFile(new File([blob], new URL(path, document.baseURI).pathname.split("/").pop(), { type: "image/jpeg" }), button.querySelector("img").alt);
  } catch {
    if (!signal.aborted) showError(NETWORK_ERROR, "network_error");
  }
}

// ---- sending --------------------------------------------------------------------------

async function classifyFile(file, label) {
  const signal = begin("Preparing the photo…");
  const shrunk = await shrink(file);
  if (signal.aborted) return;
  // A file this browser cannot decode goes as it is: the service gives the authoritative answer.
  const blob = shrunk ? shrunk.blob : file;
  if (!shrunk && file.size > MAX_UPLOAD_BYTES) {
    showPreview(null, label, "not sent");
    showError(ERRORS.payload_too_large, "payload_too_large");
    return;
  }
  showPreview(shrunk, label, shrunk ? `${shrunk.width} × ${shrunk.height} px sent` : "sent as it is");
  const headers = { "Content-Type": blob.type || "application/octet-stream" };
  // The bytes rather than the Blob: the same upload, and visible to the browser's devtools protocol.
  const bytes = await blob.arrayBuffer();
  if (signal.aborted) return;
  await send({ method: "POST", body: bytes, headers }, `?top_k=${TOP_K}`, signal);
}

async function classifyUrl(url) {
  const signal = begin("Asking the service to fetch the image…");
  showPreview(null, hostOf(url), "fetched by the service");
  await send(
    { method: "POST", body: JSON.stringify({ url, top_k: TOP_K }), headers: { "Content-Type": "application/json" } },
    "",
    signal,
  );
}

/** Decode, honour EXIF orientation, scale to MAX_SIDE and re-encode as JPEG (which also drops
 * the EXIF metadata, GPS position included). Null when this browser cannot decode the file. */
async function shrink(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return null;
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff"; // transparent pixels become white, as the service does
  context.fillRect(0, 0, width, height);
  context.imageSmoothingQuality = "high";
  context.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  return blob ? { blob, width, height } : null;
}

function begin(message) {
  current?.abort();
  current = new AbortController();
  ui.result.dataset.state = "busy";
  ui.result.setAttribute("aria-busy", "true");
  delete ui.status.dataset.code;
  ui.status.textContent = message;
  ui.detail.textContent = "";
  ui.predictions.replaceChildren();
  ui.meta.textContent = "";
  scrollResultIntoView();
  return current.signal;
}

async function send(init, query, signal) {
  const started = performance.now();
  const timer = setTimeout(() => current?.signal === signal && current.abort("timeout"), TIMEOUT_MS);
  let response;
  let body = null;
  try {
    response = await fetch(PREDICT_URL.href + query, { ...init, signal, credentials: "same-origin", cache: "no-store" });
    body = await response.json().catch(() => null);
  } catch (error) {
    if (signal.aborted && signal.reason !== "timeout") return; // superseded by a newer request
    showError(signal.reason === "timeout" ? TIMEOUT_ERROR : NETWORK_ERROR, signal.reason === "timeout" ? "timeout" : "network_error");
    return;
  } finally {
    clearTimeout(timer);
  }
  if (signal.aborted) return;
  const roundTrip = performance.now() - started;
  if (response.ok && body && Array.isArray(body.predictions) && body.predictions.length) {
    showResult(body, roundTrip);
  } else {
    const code = typeof body?.error?.code === "string" ? body.error.code : null;
    const text = ERRORS[code] ?? [`The service answered with an error (HTTP ${response.status}).`, "Try again in a moment."];
    const extra = code === "rate_limited" ? retryAfter(response) : "";
    showError([text[0], [text[1], extra].filter(Boolean).join(" ")], code ?? `http_${response.status}`, body, response);
  }
}

// ---- showing --------------------------------------------------------------------------

function showPreview(shrunk, caption, note) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  ui.figure.hidden = false;
  if (shrunk) {
    previewUrl = URL.createObjectURL(shrunk.blob);
    ui.preview.src = previewUrl;
    ui.preview.hidden = false;
  } else {
    ui.preview.removeAttribute("src");
    ui.preview.hidden = true;
  }
  ui.preview.alt = caption ? `Your photo: ${caption}` : "Your photo";
  ui.caption.replaceChildren(text("span", caption, "caption-name"), text("span", note, "caption-note"));
}

function showResult(body, roundTrip) {
  const predictions = body.predictions.slice(0, TOP_K);
  const best = predictions[0];
  const notFlower = body.is_flower === false;
  ui.result.dataset.state = notFlower ? "not-flower" : "done";
  ui.result.removeAttribute("aria-busy");
  if (notFlower) {
    ui.status.textContent = "Not a flower: this photo does not look like one.";
  } else {
    ui.status.replaceChildren(
      text("span", "Most likely ", "status-kicker"),
      text("span", String(best.label), "status-label"),
      text("span", ` ${percent(best.score)}`, "status-score"),
    );
  }
  ui.detail.textContent = notFlower ? "The species below are only the closest of the 102 the model knows." : "";
  ui.predictions.replaceChildren(...predictions.map((p, i) => bar(p, i)));

  const parts = [];
  if (typeof body.flower_score === "number") parts.push(`flower score ${percent(body.flower_score)}`);
  const service = serviceMs(body.timings_ms);
  parts.push(`${Math.round(roundTrip)} ms round trip` + (service === null ? "" : ` (${service.toFixed(1)} ms to classify)`));
  parts.push(`model ${String(body.model ?? "?")} ${String(body.model_version ?? "")}`.trim());
  ui.meta.textContent = parts.join(" · ");
  scrollResultIntoView();
  if (typeof body.request_id === "string") ui.meta.title = `request id ${body.request_id}`;
}

function bar(prediction, index) {
  const item = document.createElement("li");
  item.className = index === 0 ? "prediction best" : "prediction";
  const score = Math.min(1, Math.max(0, Number(prediction.score) || 0));
  const head = document.createElement("div");
  head.className = "prediction-head";
  head.append(text("span", String(prediction.label), "prediction-label"), text("span", percent(score), "prediction-score"));
  const track = document.createElement("div");
  track.className = "bar";
  track.setAttribute("aria-hidden", "true"); // the percentage beside it says the same
  const fill = document.createElement("div");
  fill.className = "bar-fill";
  fill.style.width = `${(score * 100).toFixed(2)}%`; // CSSOM, allowed by style-src 'self'
  track.append(fill);
  item.dataset.score = String(score);
  item.append(head, track);
  return item;
}

function showError([title, hint], code, body = null, response = null) {
  ui.result.dataset.state = "error";
  ui.result.removeAttribute("aria-busy");
  ui.status.dataset.code = code;
  ui.status.textContent = title;
  const said = typeof body?.error?.message === "string" ? ` (The service said: “${body.error.message.slice(0, 300)}”)` : "";
  ui.detail.textContent = `${hint}${said}`;
  ui.predictions.replaceChildren();
  const id = typeof body?.request_id === "string" ? body.request_id : response?.headers.get("x-amzn-requestid");
  ui.meta.textContent = response ? `HTTP ${response.status}${code ? ` · ${code}` : ""}${id ? ` · request ${id}` : ""}` : "";
  scrollResultIntoView();
}

function retryAfter(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? `(Retry in ${Math.ceil(seconds)} s.)` : "";
}

function serviceMs(timings) {
  if (!timings || typeof timings !== "object") return null;
  const values = Object.values(timings).filter((v) => typeof v === "number");
  return values.length ? values.reduce((a, b) => a + b, 0) : null;
}

function percent(score) {
  const value = score * 100;
  return value > 0 && value < 0.1 ? "<0.1%" : `${value.toFixed(1)}%`;
}

function hostOf(url) {
  try {
    return new URL(url).host || url;
  } catch {
    return url;
  }
}

function text(tag, content, className) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = content;
  return element;
}

function scrollResultIntoView() {
  // On a phone the result is below the intake: bring it up, without moving the focus.
  const box = ui.result.getBoundingClientRect();
  if (box.top > window.innerHeight * 0.6 || box.top < 0) {
    const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    ui.result.scrollIntoView({ behavior: smooth ? "smooth" : "auto", block: "start" });
  }
}
