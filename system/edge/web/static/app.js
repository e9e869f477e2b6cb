// The dashboard's live updates: poll the JSON API about once a second and change the page in place.
// The seed reloaded the whole page every 5 s; here a model swap, a new result or a job step shows
// without a reload. Every failure ends in the connection badge, never in an uncaught exception.
"use strict";

(() => {
  const POLL_MS = 1000;
  const REQUEST_TIMEOUT_MS = 5000;
  const MODELS_REFRESH_TICKS = 10; // re-read the models now and then even when the generation stays
  const state = { generation: null, modelsTick: -Infinity, resultTag: null, jobsJson: null, tick: 0 };

  const $ = (selector) => document.querySelector(selector);

  function setText(selector, value) {
    const element = $(selector);
    if (element) element.textContent = value === null || value === undefined ? "–" : String(value);
  }

  function show(selector, visible) {
    const element = $(selector);
    if (element) element.hidden = !visible;
  }

  function setBadge(selector, text, level, title) {
    const element = $(selector);
    if (!element) return;
    element.textContent = text;
    element.className = `badge ${level}`;
    if (title !== undefined) element.title = title;
  }

  function formatTime(epochSeconds) {
    if (typeof epochSeconds !== "number") return "–";
    const d = new Date(epochSeconds * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function formatDuration(seconds) {
    if (typeof seconds !== "number") return "";
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
  }

  function formatProbabilities(probabilities) {
    return Object.entries(probabilities || {})
      .map(([label, p]) => `${label}=${Number(p).toFixed(6)}`)
      .join(" / ");
  }

  function capitalise(text) {
    const s = String(text || "");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function verdictLevel(label) {
    if (label === "normal") return "normal";
    if (label === "anomalous") return "anomalous";
    return "other";
  }

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // GET `path` as JSON: {status, body, etag}; 304 and `okStatuses` are answers, other statuses throw.
  async function getJson(path, { headers = {}, okStatuses = [] } = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(path, {
        headers: { Accept: "application/json", ...headers },
        cache: "no-store",
        signal: controller.signal,
      });
      if (response.status === 304) return { status: 304, body: null, etag: response.headers.get("ETag") };
      const body = await response.json().catch(() => null);
      if (!response.ok && !okStatuses.includes(response.status)) {
        const message = body && body.error ? body.error : `HTTP ${response.status}`;
        throw new HttpError(response.status, `${path}: ${message}`);
      }
      return { status: response.status, body, etag: response.headers.get("ETag") };
    } finally {
      clearTimeout(timer);
    }
  }

  function renderStatus(status) {
    setText("#thing", status.thing);
    setText("#profile", status.profile ? `profile ${status.profile}` : "");
    document.title = `edgesim · ${status.thing || "edge device"}`;
    setBadge("#badge-health", status.healthy ? "healthy" : "unhealthy", status.healthy ? "ok" : "bad");
    const agent = status.agent || {};
    setBadge("#badge-agent", agent.reachable ? "agent: up" : "agent: unreachable", agent.reachable ? "ok" : "bad",
      `Edge Agent at ${agent.target || "?"}`);
    const mqtt = status.mqtt || {};
    setBadge("#badge-mqtt", mqtt.connected ? "MQTT: connected" : "MQTT: disconnected", mqtt.connected ? "ok" : "bad");
    setText("#agent-target", agent.target ? `Agent ${agent.target} ·` : "");
    const inference = status.inference || {};
    setText("#inference-stats", `inference ${inference.running ? "running" : "stopped"} · ${Number(inference.rate_hz || 0).toFixed(1)} Hz · ${inference.count || 0} results · ${inference.errors || 0} errors ·`);
    setText("#uptime", `up ${formatDuration(status.uptime_seconds)}`);
    const job = status.ota && status.ota.current_job;
    setText("#ota-current", job ? `${job.job_id || "?"}: ${job.model_name || "?"} ${job.version || ""} (${job.step || job.status || "…"})` : "none");
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined || text === "" ? "–" : String(text);
    if (className) td.className = className;
    return td;
  }

  function emptyRow(columns, text) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(text);
    td.colSpan = columns;
    tr.append(td);
    return tr;
  }

  function renderModels(payload) {
    const rows = (payload.models || []).map((model) => {
      const tr = document.createElement("tr");
      tr.dataset.modelName = model.name;
      tr.dataset.version = model.version;
      tr.dataset.app = model.app || "";
      tr.append(cell(model.app, "app"), cell(model.name, "name"), cell(model.version, "version"),
        cell(model.identifier, "identifier mono"), cell(model.framework, "framework"));
      return tr;
    });
    $("#models tbody").replaceChildren(...(rows.length ? rows : [emptyRow(5, "No model loaded")]));
    state.generation = payload.generation;
    document.body.dataset.generation = String(payload.generation);
  }

  function renderClassification(result) {
    show("#classification-result", Boolean(result));
    show("#no-classification", !result);
    if (!result) return;
    const level = verdictLevel(result.label);
    const verdict = $("#verdict");
    verdict.textContent = capitalise(result.label);
    verdict.dataset.label = result.label;
    $("#verdict-box").className = `verdict-box ${level}`;
    setText("#probabilities", formatProbabilities(result.probabilities));
    setText("#classification-model", `${result.model} (version ${result.version})`);
    setText("#classification-latency", Number(result.latency_ms).toFixed(1));
  }

  function renderSegmentation(result) {
    show("#segmentation-result", Boolean(result));
    show("#no-segmentation", !result);
    if (!result) return;
    $("#mask-overlay").src = result.overlay;
    setText("#defect-fraction", Number(result.defect_fraction).toFixed(6));
    setText("#segmentation-model", `${result.model} (version ${result.version})`);
    setText("#segmentation-latency", Number(result.latency_ms).toFixed(1));
  }

  function renderResult(result) {
    const image = $("#current-image");
    if (result && result.image) image.src = result.image;
    show("#current-image", Boolean(result));
    show("#no-image", !result);
    setText("#image-name", result ? result.image_name : null);
    setText("#result-sequence", result ? result.sequence : null);
    setText("#result-time", result ? formatTime(result.timestamp) : null);
    show("#result-captured", Boolean(result && result.captured));
    renderClassification(result && result.classification);
    renderSegmentation(result && result.segmentation);
    const errors = (result && result.errors) || [];
    $("#result-errors").replaceChildren(...errors.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    show("#result-errors", errors.length > 0);
    document.body.dataset.sequence = result ? String(result.sequence) : "";
  }

  function jobLevel(status) {
    if (status === "SUCCEEDED") return "ok";
    if (status === "IN_PROGRESS" || status === "QUEUED") return "warn";
    return "bad";
  }

  function renderJobs(jobs) {
    const json = JSON.stringify(jobs);
    if (json === state.jobsJson) return; // unchanged: keep the DOM (and any text selection) as it is
    state.jobsJson = json;
    const rows = jobs.map((job) => {
      const tr = document.createElement("tr");
      tr.dataset.jobId = job.job_id;
      tr.dataset.status = job.status;
      const status = cell("", "status");
      const badge = document.createElement("span");
      badge.className = `badge ${jobLevel(job.status)}`;
      badge.textContent = job.status;
      status.replaceChildren(badge);
      tr.append(cell(job.job_id, "job-id mono"), cell(job.model_name, "model"), cell(job.version, "version"), status,
        cell(job.reason, "reason"), cell(job.step, "step"), cell(formatTime(job.started_at), "started"),
        cell(formatTime(job.finished_at), "finished"));
      return tr;
    });
    $("#jobs tbody").replaceChildren(...(rows.length ? rows : [emptyRow(8, "No OTA job yet")]));
  }

  async function pollResult() {
    const headers = state.resultTag ? { "If-None-Match": state.resultTag } : {};
    const answer = await getJson("api/results/latest", { headers, okStatuses: [404] });
    if (answer.status === 304) return;
    state.resultTag = answer.status === 200 ? answer.etag : null;
    renderResult(answer.status === 200 ? answer.body : null);
  }

  async function pollStatusAndModels() {
    const status = (await getJson("api/status")).body || {};
    renderStatus(status);
    const stale = status.generation === undefined || status.generation !== state.generation;
    if (stale || state.tick - state.modelsTick >= MODELS_REFRESH_TICKS) {
      renderModels((await getJson("api/models")).body || {});
      state.modelsTick = state.tick;
    }
  }

  async function pollJobs() {
    renderJobs(((await getJson("api/jobs")).body || {}).jobs || []);
  }

  function reportConnection(failures) {
    if (failures.length === 0) {
      setBadge("#badge-connection", "connected", "ok", "the device answers");
      document.body.dataset.connection = "ok";
      const now = new Date();
      setText("#last-updated", formatTime(now.getTime() / 1000));
      $("#last-updated").dataset.at = String(now.getTime());
      return;
    }
    const offline = failures.every((error) => !(error instanceof HttpError));
    const message = failures.map((error) => error.message || String(error)).join("; ");
    setBadge("#badge-connection", offline ? "offline" : "API error", offline ? "bad" : "warn", message);
    document.body.dataset.connection = offline ? "offline" : "error";
  }

  async function tick() {
    state.tick += 1;
    try {
      const outcomes = await Promise.allSettled([pollStatusAndModels(), pollResult(), pollJobs()]);
      reportConnection(outcomes.filter((o) => o.status === "rejected").map((o) => o.reason));
    } catch (error) {
      reportConnection([error]);
    } finally {
      setTimeout(tick, POLL_MS);
    }
  }

  function showUploadResult(result) {
    const classification = result.classification;
    const verdict = $("#upload-verdict");
    verdict.textContent = classification ? capitalise(classification.label) : "No image classification result available";
    verdict.dataset.label = classification ? classification.label : "";
    verdict.className = `verdict-box ${classification ? verdictLevel(classification.label) : "other"}`;
    setText("#upload-probabilities", classification ? formatProbabilities(classification.probabilities) : null);
    const segmentation = result.segmentation;
    setText("#upload-defect-fraction", segmentation ? Number(segmentation.defect_fraction).toFixed(6) : null);
    const overlay = $("#upload-overlay");
    if (segmentation) overlay.src = segmentation.overlay;
    overlay.hidden = !segmentation;
    show("#upload-result", true);
  }

  async function upload(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const button = $("#upload-submit");
    button.disabled = true;
    show("#upload-error", false);
    try {
      const response = await fetch("api/predict", { method: "POST", body: new FormData(form) });
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new Error(body && body.error ? body.error : `HTTP ${response.status}`);
      showUploadResult(body);
    } catch (error) {
      show("#upload-result", false);
      setText("#upload-error", error.message || String(error));
      show("#upload-error", true);
    } finally {
      button.disabled = false;
    }
  }

  function start() {
    const form = $("#upload-form");
    if (form) form.addEventListener("submit", upload);
    tick();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
