#!/usr/bin/env bash
echo "coverage is not collected through Bazel in Concord" >&2
exit 1
