"""OpenAPI 3 for the gateway's REST surface, generated from the contracts by the build."""
