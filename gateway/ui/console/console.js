// The console's behaviour: plain browser JavaScript, no build step, no packages. Every call
// goes through the gateway's REST API with the pasted token; every failure is shown with the
// gateway's JSON error message.
"use strict";

// Views that depend on APIs the gateway may not route yet: each is tried, and when it does not
// answer 200 the console says it is not available and how to see the same from the terminal.
const OPTIONAL_VIEWS = {
  saga: { path: (id) => `/v1/sagas/${encodeURIComponent(id)}`, cli: "python -m tools.devstack sagas" },
  trace: { path: (id) => `/v1/traces/${encodeURIComponent(id)}`, cli: "python -m tools.devstack trace <order_id>" },
};

const $ = (id) => document.getElementById(id);
const shortStatus = (s) => String(s || "").replace(/^ORDER_STATUS_/, "");

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

async function showOptional(name, orderId) {
  const view = OPTIONAL_VIEWS[name];
  const target = $(name);
  target.replaceChildren();
  try {
    const body = await api(view.path(orderId));
    target.append(element("pre", JSON.stringify(body, null, 2)));
  } catch (error) {
    target.append(element("p", `not available through the gateway (${error.message}); see \`${view.cli}\``, "note"));
  }
}

async function openOrder(orderId) {
  showError(null);
  try {
    const [order, history] = await Promise.all([
      api(`/v1/orders/${encodeURIComponent(orderId)}`),
      api(`/v1/orders/${encodeURIComponent(orderId)}/events`),
    ]);
    $("order-id").textContent = orderId;
    $("order-status").textContent = shortStatus(order.order.status);
    renderTimeline(history.events || []);
    $("order").hidden = false;
    await Promise.all([showOptional("saga", orderId), showOptional("trace", orderId)]);
  } catch (error) {
    showError(error);
  }
}

$("load-orders").addEventListener("click", loadOrders);
