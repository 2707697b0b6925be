#!/usr/bin/env bash
# The CLI compatibility test against Debian's dockerd (the reference engine).
# See compat.sh; `compat.sh --daemon vmrund` runs it against our daemon.
exec "$(dirname "$0")/compat.sh" --daemon dockerd "$@"
