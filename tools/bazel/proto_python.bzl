"""Compiles .proto contracts into Python messages, gRPC stubs, type stubs and a descriptor set.

`concord_proto_python(name, srcs, import_root)` runs grpc_tools.protoc (from the virtualenv
toolchain) over `srcs` once and declares, for each `a/b/c.proto` below `import_root`:
`a/b/c_pb2.py`, `a/b/c_pb2.pyi` and `a/b/c_pb2_grpc.py`. Its `descriptors` output group holds
`<name>.binpb`, a FileDescriptorSet with imports and source info: what Envoy's gRPC-JSON
transcoder and the contract registry read. Wrap the default output in a py_library with
`imports = ["."]` so code imports `shop.orders.v1.orders_pb2`.
"""

def _stem(src, import_root):
    path = src.short_path
    prefix = import_root + "/"
    if not path.startswith(prefix):
        fail("%s is not below %s" % (path, import_root))
    return path[len(prefix):-len(".proto")]

def _concord_proto_python_impl(ctx):
    runtime = ctx.toolchains["@bazel_tools//tools/python:toolchain_type"].py3_runtime
    interpreter = runtime.interpreter_path
    out_root = ctx.bin_dir.path + "/" + ctx.label.package
    outputs = []
    for src in ctx.files.srcs:
        stem = _stem(src, ctx.attr.import_root)
        for suffix in ["_pb2.py", "_pb2.pyi", "_pb2_grpc.py"]:
            outputs.append(ctx.actions.declare_file(stem + suffix))
    descriptors = ctx.actions.declare_file(ctx.label.name + ".binpb")

    include_dirs = {ctx.attr.import_root: True}
    for dep in ctx.files.deps:
        include_dirs[dep.path[:-len(dep.short_path)] + dep.owner.package] = True
    args = ctx.actions.args()
    args.add("-m", "grpc_tools.protoc")
    for include in include_dirs.keys():
        args.add("-I" + include)
    args.add("--python_out=" + out_root)
    args.add("--pyi_out=" + out_root)
    args.add("--grpc_python_out=" + out_root)
    args.add("--include_imports")
    args.add("--include_source_info")
    args.add("--descriptor_set_out=" + descriptors.path)
    args.add_all(ctx.files.srcs)

    ctx.actions.run(
        executable = interpreter,
        arguments = [args],
        inputs = ctx.files.srcs + ctx.files.deps + ctx.files._toolchain_pins,
        outputs = outputs + [descriptors],
        mnemonic = "ConcordProtoPython",
        progress_message = "Compiling %d protos for %s" % (len(ctx.files.srcs), ctx.label),
        use_default_shell_env = True,
    )
    return [
        DefaultInfo(files = depset(outputs)),
        OutputGroupInfo(descriptors = depset([descriptors])),
    ]

concord_proto_python = rule(
    implementation = _concord_proto_python_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".proto"], mandatory = True),
        "deps": attr.label_list(
            allow_files = [".proto"],
            doc = "Imported protos; each is found on an include path rooted at its package.",
        ),
        "import_root": attr.string(mandatory = True, doc = "Package path the imports are relative to."),
        "_toolchain_pins": attr.label(
            default = "//:requirements.txt",
            allow_single_file = True,
            doc = "The pinned protoc and protobuf versions: regenerate when they change.",
        ),
    },
    toolchains = ["@bazel_tools//tools/python:toolchain_type"],
)
