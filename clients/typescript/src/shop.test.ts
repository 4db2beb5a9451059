/**
 * The shop through the gateway from TypeScript, with code generated only from what the
 * registry serves: place an order over gRPC, wait for CONFIRMED over the Connect protocol,
 * read it back over REST, and the documented errors (docs/gateway.md) on each protocol.
 *
 * Needs a running gateway and tokens in the environment (see README.md); run with `npm test`.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import { OrderStatus } from "./gen/shop/orders/v1/orders_pb.js";
import { GetOrderRequestSchema } from "./gen/shop/orders/v1/orders_service_pb.js";
import { connectOrders, GrpcGateway, restClient, settingsFromEnv, stockAndCredit, subjectOf, waitForStatus } from "./shop.js";

const settings = settingsFromEnv();
const grpc = new GrpcGateway(settings.gatewayUrl);
after(() => grpc.close());

/** The error a call failed with, as a ConnectError; fails the test when the call succeeded. */
async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail("the call succeeded, a refusal was expected");
}

/** GetOrder as a browser's fetch sends it with the Connect protocol: status and JSON body. */
async function connectGetOrderOverFetch(orderId: string, token?: string): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = {
    "content-type": "application/proto",
    "connect-protocol-version": "1",
  };
  if (token !== undefined) {
    headers.authorization = `Bearer ${token}`;
  }
  const response = await fetch(`${settings.gatewayUrl}/shop.orders.v1.OrdersService/GetOrder`, {
    method: "POST",
    headers,
    body: toBinary(GetOrderRequestSchema, create(GetOrderRequestSchema, { orderId })),
  });
  assert.equal(response.headers.get("content-type"), "application/json");
  return { status: response.status, body: await response.json() };
}

describe("an order placed over gRPC", () => {
  const customer = subjectOf(settings.customerToken);
  let orderId = "";

  before(async () => {
    const productId = await stockAndCredit(grpc, settings.adminToken, customer);
    const { order } = await grpc.orders(settings.customerToken).placeOrder({
      lines: [{ productId, quantity: 2n }],
      idempotencyKey: `ts-client-${productId}`,
    });
    assert.ok(order, "PlaceOrder answered without an order");
    assert.equal(order.status, OrderStatus.PENDING);
    assert.equal(order.customerId, customer);
    orderId = order.orderId;
  });

  test("is confirmed, asked for over the Connect protocol (HTTP/1.1)", async () => {
    const orders = connectOrders(settings.gatewayUrl, settings.customerToken);
    const confirmed = await waitForStatus(orders, orderId, OrderStatus.CONFIRMED);
    assert.equal(confirmed.totalMinor, 2500n);
    assert.equal(confirmed.currencyCode, "EUR");
  });

  test("reads back over REST with the OpenAPI document's types", async () => {
    await waitForStatus(connectOrders(settings.gatewayUrl, settings.customerToken), orderId, OrderStatus.CONFIRMED);
    const rest = restClient(settings.gatewayUrl, settings.customerToken);
    const { data, error, response } = await rest.GET("/v1/orders/{orderId}", {
      params: { path: { orderId } },
    });
    assert.equal(response.status, 200, JSON.stringify(error));
    assert.equal(data?.order?.status, "ORDER_STATUS_CONFIRMED");
    assert.equal(data?.order?.customerId, customer);
    assert.equal(data?.order?.totalMinor, "2500");
  });

  test("over gRPC without a token is UNAUTHENTICATED, 'Jwt is missing'", async () => {
    const error = await refusal(grpc.orders().getOrder({ orderId }));
    assert.equal(error.code, Code.Unauthenticated);
    assert.equal(error.rawMessage, "Jwt is missing");
  });

  test("over gRPC for another customer is NOT_FOUND", async () => {
    const error = await refusal(grpc.orders(settings.otherCustomerToken).getOrder({ orderId }));
    assert.equal(error.code, Code.NotFound);
    assert.match(error.rawMessage, new RegExp(orderId));
  });

  test("over Connect without a token is a 401 unauthenticated, 'Jwt is missing'", async () => {
    const error = await refusal(connectOrders(settings.gatewayUrl).getOrder({ orderId }));
    assert.equal(error.code, Code.Unauthenticated);
    assert.equal(error.rawMessage, "Jwt is missing");
    const wire = await connectGetOrderOverFetch(orderId);
    assert.deepEqual(wire, { status: 401, body: { code: "unauthenticated", message: "Jwt is missing" } });
  });

  test("over Connect for another customer is a 404 not_found", async () => {
    const orders = connectOrders(settings.gatewayUrl, settings.otherCustomerToken);
    const error = await refusal(orders.getOrder({ orderId }));
    assert.equal(error.code, Code.NotFound);
    assert.match(error.rawMessage, new RegExp(orderId));
    const wire = await connectGetOrderOverFetch(orderId, settings.otherCustomerToken);
    assert.equal(wire.status, 404);
    const { code, message, details } = wire.body as { code: unknown; message: unknown; details?: { type: string }[] };
    assert.deepEqual({ code, message }, { code: "not_found", message: error.rawMessage });
    // The service's error details cross the bridge too, base64 protobuf as Connect carries them,
    // named by message name as the Connect protocol (and findDetails) expects.
    assert.deepEqual(details?.map((d) => d.type), ["google.rpc.ResourceInfo"]);
  });

  test("over REST without a token is a 401 with a google.rpc.Status body", async () => {
    const { data, error, response } = await restClient(settings.gatewayUrl).GET("/v1/orders/{orderId}", {
      params: { path: { orderId } },
    });
    assert.equal(data, undefined);
    assert.equal(response.status, 401);
    assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer\b/);
    assert.equal(error?.code, 16);
    assert.equal(error?.message, "Jwt is missing");
  });

  test("over REST for another customer is a 404 with a google.rpc.Status body", async () => {
    const rest = restClient(settings.gatewayUrl, settings.otherCustomerToken);
    const { data, error, response } = await rest.GET("/v1/orders/{orderId}", { params: { path: { orderId } } });
    assert.equal(data, undefined);
    assert.equal(response.status, 404);
    assert.equal(error?.code, 5);
    assert.match(error?.message ?? "", new RegExp(orderId));
  });
});
