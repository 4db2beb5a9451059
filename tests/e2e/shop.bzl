"""`shop_pytest`: an e2e suite with the whole shop behind the gateway.

The same as `concord_pytest` with the gateway's config as data, the e2e fixtures and every
process of the shop (SHOP_SERVICES) as deps, and the `exclusive` tag: each such suite starts
NATS, the registry, every service and Envoy, too heavy to run beside another.
"""

load("//tools/bazel:catalogue.bzl", "SHOP_SERVICES")
load("//tools/bazel:pytest.bzl", "concord_pytest")

def shop_pytest(name, srcs, data = [], deps = [], **kwargs):
    concord_pytest(
        name = name,
        srcs = srcs,
        data = ["//gateway:config"] + data,
        tags = ["exclusive"],
        deps = [":fixtures"] + deps + SHOP_SERVICES,
        **kwargs
    )
