// Starts Swagger UI on the gateway's own OpenAPI document. "Try it out" sends requests to the
// gateway this page came from (whatever its port), not to the document's default server.
// Tokens given to "Authorize" are kept across reloads (this browser's local storage).
fetch("/openapi.json")
  .then((reply) => reply.json())
  .then((spec) => {
    spec.servers = [{ url: window.location.origin, description: "this gateway" }];
    window.ui = SwaggerUIBundle({
      spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
    });
  });
