"""`concord_pytest`: a py_test target that runs pytest suites.

Every test suite in tests/ is one of these, so `bazel test //...` runs them all and plain
`pytest` still works for quick local runs. Each target gets the shared fixtures (//tests:support)
and the pytest configuration in pyproject.toml.
"""

def concord_pytest(name, srcs, deps = [], data = [], size = "medium", tags = [], postgres = False, **kwargs):
    """`postgres = True`: the suite starts a PostgreSQL server (tests/support/postgres.py). As
    root that server runs as the `postgres` user, which Bazel's sandbox (a user namespace that
    maps root alone) cannot switch to, so such suites run outside the sandbox."""
    if postgres:
        tags = tags + ["no-sandbox"]
    native.py_test(
        name = name,
        srcs = srcs + native.glob(["__init__.py"]) + ["//tools/bazel:pytest_main.py"],
        main = "//tools/bazel:pytest_main.py",
        args = ["$(location %s)" % src for src in srcs],
        deps = deps + ["//tests:support"],
        data = data + ["//:pyproject.toml"],
        size = size,
        tags = tags,
        python_version = "PY3",
        **kwargs
    )
