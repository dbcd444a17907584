// hearth's one script: uploads with a progress bar per file, and statuses that change without a reload. Every
// request goes to this hearth's own /v1 API; the session cookie authenticates it (the token is never here).
"use strict";

const POLL_MS = 1000;
const SETTLED = new Set(["ready", "failed"]);

// As the server writes sizes (ui/mod.rs, human_bytes): 1.4 MB.
function humanBytes(bytes) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function statusBadge(status) {
  const badge = document.createElement("span");
  badge.className = "status";
  badge.dataset.status = status;
  badge.textContent = status;
  return badge;
}

// Shows a document's row in the Library table, adding it at the top when the page does not list it yet.
function showRow(doc) {
  const table = document.querySelector("#documents tbody");
  if (!table) return;
  let row = table.querySelector(`tr[data-id="${doc.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = doc.id;
    for (let i = 0; i < 6; i++) row.appendChild(document.createElement("td"));
    const link = document.createElement("a");
    link.href = `/library/${doc.id}`;
    row.cells[0].appendChild(link);
    row.cells[4].className = "chunks";
    table.prepend(row);
    document.getElementById("no-documents")?.remove();
  }
  row.cells[0].firstChild.textContent = doc.title || doc.external_id || "untitled";
  row.cells[1].replaceChildren(statusBadge(doc.status));
  if (doc.error) {
    const error = document.createElement("small");
    error.className = "error";
    error.textContent = doc.error;
    row.cells[1].append(document.createElement("br"), error);
  }
  row.cells[2].textContent = doc.content_type;
  row.cells[3].textContent = humanBytes(doc.byte_size);
  row.cells[4].textContent = doc.chunk_count;
  row.cells[5].textContent = doc.updated_at.slice(0, 16).replace("T", " ");
}

// Polls one document until it is ready or failed, updating its row and its upload line.
async function follow(id, line) {
  for (;;) {
    const response = await fetch(`/v1/documents/${id}`, { credentials: "same-origin" });
    if (!response.ok) return;
    // The document's fields, and its job beside them.
    const doc = await response.json();
    showRow(doc);
    if (line) line.querySelector(".state").replaceChildren(statusBadge(doc.status));
    if (SETTLED.has(doc.status)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function uploadLine(file) {
  const line = document.createElement("li");
  const name = document.createElement("span");
  name.textContent = file.name;
  const progress = document.createElement("progress");
  progress.max = 100;
  progress.value = 0;
  progress.setAttribute("aria-label", `Upload of ${file.name}`);
  const state = document.createElement("span");
  state.className = "state";
  state.textContent = "uploading";
  line.append(name, progress, state);
  document.getElementById("uploads").appendChild(line);
  return line;
}

// XMLHttpRequest rather than fetch: it reports upload progress.
function upload(file) {
  const line = uploadLine(file);
  const form = new FormData();
  form.append("file", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", "/v1/documents");
  request.responseType = "json";
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) line.querySelector("progress").value = (100 * event.loaded) / event.total;
  });
  request.addEventListener("load", () => {
    const body = request.response || {};
    if (request.status === 200 || request.status === 202) {
      line.querySelector("progress").value = 100;
      follow(body.id, line);
    } else {
      const error = document.createElement("span");
      error.className = "error";
      error.setAttribute("role", "alert");
      error.textContent = body.message || `upload failed (${request.status})`;
      line.querySelector(".state").replaceChildren(error);
    }
  });
  request.addEventListener("error", () => {
    line.querySelector(".state").textContent = "upload failed: hearth did not answer";
  });
  request.send(form);
}

function setUpUploads() {
  const input = document.getElementById("files");
  const zone = document.getElementById("dropzone");
  if (!input || !zone) return;
  input.addEventListener("change", () => {
    for (const file of input.files) upload(file);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    for (const file of event.dataTransfer.files) upload(file);
  });
}

// Rows the page was rendered with while their documents were still being indexed.
function followUnsettled() {
  for (const row of document.querySelectorAll("#documents tr[data-id]")) {
    const status = row.querySelector(".status")?.dataset.status;
    if (status && !SETTLED.has(status)) follow(row.dataset.id, null);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpUploads();
  followUnsettled();
});
