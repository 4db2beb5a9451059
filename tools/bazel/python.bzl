"""A Python toolchain that is the project's virtualenv.

The virtualenv (built by tools/setup.sh from requirements.txt) holds grpcio, protobuf,
nats-py and the wheel-shipped binaries, so every py_binary, py_test and the proto compiler run
with exactly the pinned dependencies. Set CONCORD_VENV to use a virtualenv elsewhere.
"""

def _concord_python_impl(rctx):
    venv = rctx.os.environ.get("CONCORD_VENV", "")
    if not venv:
        venv = str(rctx.path(Label("//:WORKSPACE")).dirname) + "/.venv"
    interpreter = venv + "/bin/python3"
    if not rctx.path(interpreter).exists:
        fail("no virtualenv at %s: run tools/setup.sh (or make setup) first" % venv)
    rctx.file("BUILD.bazel", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "venv_python3",
    interpreter_path = "{interpreter}",
    python_version = "PY3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":venv_python3",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(interpreter = interpreter))

concord_python = repository_rule(
    implementation = _concord_python_impl,
    environ = ["CONCORD_VENV"],
    local = True,
)
