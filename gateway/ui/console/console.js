// The console's behaviour: plain browser JavaScript, no build step, no packages. Every call
// goes through the gateway's REST API with the pasted token; every failure is shown with the
// gateway's JSON error message.
"use strict";

// The operator views of one order, each answered by the orders admin service through the
// gateway to tokens with the admin role only; with any other token the panel shows the
// gateway's refusal and the command that shows the same in a terminal.
const OPERATOR_VIEWS = {
  saga: { path: (id) => `/v1/orders/${encodeURIComponent(id)}/saga`, cli: "python -m tools.devstack sagas", render: renderSaga },
  trace: { path: (id) => `/v1/orders/${encodeURIComponent(id)}/trace`, cli: "python -m tools.devstack trace <order_id>", render: renderTraces },
};

const $ = (id) => document.getElementById(id);
const shortStatus = (s) => String(s || "").replace(/^ORDER_STATUS_/, "");
const shortStep = (s) => String(s || "").replace(/^SAGA_STEP_/, "");
const shortType = (t) => String(t || "").split(".").pop();

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function api(path) {
  const token = $("token").value.trim();
  if (!token) throw new Error("paste a token first");
  const reply = await fetch(path, { headers: { authorization: `Bearer ${token}` } });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(`${reply.status} ${path}: ${body.message || reply.statusText}`);
  return body;
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
}

async function loadOrders() {
  showError(null);
  const rows = $("orders").tBodies[0];
  rows.replaceChildren();
  try {
    const page = await api("/v1/orders?pageSize=50");
    for (const order of page.orders || []) {
      const row = rows.insertRow();
      row.dataset.orderId = order.orderId;
      const link = element("a", order.orderId);
      link.href = `#${order.orderId}`;
      link.addEventListener("click", (event) => { event.preventDefault(); openOrder(order.orderId); });
      row.insertCell().append(link);
      row.insertCell().append(element("span", shortStatus(order.status), "status"));
      row.insertCell().textContent = `${(Number(order.totalMinor) / 100).toFixed(2)} ${order.currencyCode}`;
    }
    if (!(page.orders || []).length) rows.insertRow().insertCell().textContent = "no orders";
  } catch (error) {
    showError(error);
  }
}

// "orderPaymentAuthorized" -> "PAYMENT AUTHORIZED"
function eventLabel(kind) {
  return kind.replace(/^order/, "").replace(/([a-z])([A-Z])/g, "$1 $2").toUpperCase();
}

function renderTimeline(events) {
  const list = $("timeline");
  list.replaceChildren();
  for (const event of events) {
    const [kind, body] = Object.entries(event).find(([, value]) => value) || ["unknown", {}];
    const item = element("li");
    item.dataset.kind = kind;
    item.append(element("span", eventLabel(kind), "kind"), " ");
    item.append(element("span", `v${body.version} ${body.occurTime || ""}`, "when"));
    if (body.reason) item.append(" ", element("span", body.reason, "reason"));
    list.append(item);
  }
}

function field(list, label, value) {
  list.append(element("dt", label), element("dd", value === undefined || value === "" ? "-" : String(value)));
}

function commandList(commands) {
  return (commands || []).map((c) => `${shortType(c.typeName)} (${c.commandId})`).join(", ");
}

// The saga: where it stands, then every step it went through with the time it entered it.
function renderSaga(target, body) {
  const saga = body.saga || {};
  const facts = element("dl", undefined, "saga-facts");
  field(facts, "state", shortStep(saga.step));
  field(facts, "entered", saga.stepTime);
  field(facts, "deadline", saga.deadline);
  field(facts, "attempts (operator re-sends)", saga.attempt);
  field(facts, "reason", saga.reason);
  field(facts, "commands sent", commandList(saga.commandsSent));
  field(facts, "waiting on", commandList(saga.pendingCommands));
  field(facts, "resolution", saga.resolution);
  const steps = element("table", undefined, "saga-steps");
  steps.createTHead().insertRow().append(element("th", "step"), element("th", "entered"));
  const rows = steps.createTBody();
  for (const step of saga.steps || []) {
    const row = rows.insertRow();
    row.dataset.step = shortStep(step.step);
    row.insertCell().textContent = shortStep(step.step);
    row.insertCell().textContent = step.enterTime || "";
  }
  target.append(facts, steps);
}

// One trace as a waterfall: each span under its parent, its bar placed and sized on the
// trace's duration, with its service and duration.
function renderTrace(trace) {
  const spans = trace.spans || [];
  const total = Math.max(Number(trace.durationMs) || 0, 0.001);
  const known = new Set(spans.map((s) => s.spanId));
  const children = new Map();
  for (const span of spans) {
    const parent = known.has(span.parentSpanId) ? span.parentSpanId : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  const table = element("table", undefined, "waterfall");
  table.dataset.traceId = trace.traceId;
  table.createTHead().insertRow().append(
    element("th", "span"), element("th", "service"), element("th", "ms"), element("th", "timeline"));
  const rows = table.createTBody();
  const walk = (parent, depth) => {
    for (const span of (children.get(parent) || []).sort((a, b) => a.startOffsetMs - b.startOffsetMs)) {
      const row = rows.insertRow();
      row.dataset.service = span.service;
      row.dataset.depth = String(depth);
      if (span.status === "ERROR") row.className = "span-error";
      const name = row.insertCell();
      name.textContent = span.name;
      name.style.paddingLeft = `${depth * 1.2 + 0.4}em`;
      name.title = Object.entries(span.attributes || {}).map(([k, v]) => `${k}=${v}`).join("\n");
      row.insertCell().textContent = span.service;
      row.insertCell().textContent = Number(span.durationMs).toFixed(1);
      const bar = element("span", undefined, "bar");
      bar.style.marginLeft = `${(Number(span.startOffsetMs) / total) * 100}%`;
      bar.style.width = `${Math.max((Number(span.durationMs) / total) * 100, 0.5)}%`;
      const lane = element("div", undefined, "lane");
      lane.append(bar);
      row.insertCell().append(lane);
      walk(span.spanId, depth + 1);
    }
  };
  walk("", 0);
  const heading = element("p", `trace ${trace.traceId}: ${spans.length} spans across ${(trace.services || []).join(", ")}, ${Number(trace.durationMs).toFixed(1)} ms`, "trace-summary");
  return [heading, table];
}

function renderTraces(target, body) {
  for (const trace of body.traces || []) target.append(...renderTrace(trace));
}

async function showOperatorView(name, orderId) {
  const view = OPERATOR_VIEWS[name];
  const target = $(name);
  target.replaceChildren();
  try {
    view.render(target, await api(view.path(orderId)));
  } catch (error) {
    target.append(element("p", `${error.message} (needs a token with the admin role; in a terminal: \`${view.cli}\`)`, "note"));
  }
}

// The order's status and timeline are the customer's (the token's subject); its saga and
// trace are operator views, shown for any order id to a token with the admin role.
async function openOrder(orderId) {
  showError(null);
  $("order-id").textContent = orderId;
  $("order-status").textContent = "";
  $("timeline").replaceChildren();
  $("order").hidden = false;
  const customerViews = (async () => {
    try {
      const [order, history] = await Promise.all([
        api(`/v1/orders/${encodeURIComponent(orderId)}`),
        api(`/v1/orders/${encodeURIComponent(orderId)}/events`),
      ]);
      $("order-status").textContent = shortStatus(order.order.status);
      renderTimeline(history.events || []);
    } catch (error) {
      showError(error);
    }
  })();
  await Promise.all([customerViews, showOperatorView("saga", orderId), showOperatorView("trace", orderId)]);
}

$("load-orders").addEventListener("click", loadOrders);
$("open-order").addEventListener("submit", (event) => {
  event.preventDefault();
  const orderId = $("order-lookup").value.trim();
  if (orderId) openOrder(orderId);
});
