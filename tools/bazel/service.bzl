"""`concord_service(name)`: the two targets every process package has.

`<name>_lib`, a py_library of every .py file in the package (`__main__.py` included, so tests
start the process as `python -m <package>` from their runfiles), and `<name>`, the py_binary
`make up` runs from bazel-bin.

A process's library is visible to its own package, the tests and the benchmarks, and to nothing
else: no service can depend on another's code (docs/platform.md, "Who may import whom").
"""

def concord_service(name, deps = [], extra_srcs = []):
    native.py_library(
        name = name + "_lib",
        srcs = native.glob(["*.py"]) + extra_srcs,
        visibility = [
            "//bench:__pkg__",
            "//tests:__subpackages__",
            "//%s:__pkg__" % native.package_name(),
        ],
        deps = deps,
    )
    native.py_binary(
        name = name,
        srcs = ["__main__.py"],
        main = "__main__.py",
        python_version = "PY3",
        visibility = ["//visibility:public"],
        deps = [":" + name + "_lib"],
    )
