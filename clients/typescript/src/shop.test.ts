/**
 * The shop through the gateway from TypeScript, with code generated only from what the
 * registry serves: place an order over gRPC, wait for CONFIRMED, read it back over REST, and
 * the documented errors (docs/gateway.md, "Errors") on each protocol.
 *
 * Needs a running gateway and tokens in the environment (see README.md); run with `npm test`.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Code, ConnectError } from "@connectrpc/connect";

import { OrderStatus } from "./gen/shop/orders/v1/orders_pb.js";
import { GrpcGateway, restClient, settingsFromEnv, stockAndCredit, subjectOf, waitForStatus } from "./shop.js";

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

  test("is confirmed, asked for over gRPC", async () => {
    const confirmed = await waitForStatus(grpc.orders(settings.customerToken), orderId, OrderStatus.CONFIRMED);
    assert.equal(confirmed.totalMinor, 2500n);
    assert.equal(confirmed.currencyCode, "EUR");
  });

  test("reads back over REST with the OpenAPI document's types", async () => {
    await waitForStatus(grpc.orders(settings.customerToken), orderId, OrderStatus.CONFIRMED);
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
