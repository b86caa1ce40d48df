#!/bin/sh
# Fails when a C source drifts from .clang-format (STYLE.md rule 5).
set -eu
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
	echo "checkformat: clang-format is missing (scripts/install-deps installs it)" >&2
	exit 1
fi
files=$(find broker backends fusefs tests -name '*.[ch]')
if ! clang-format --dry-run -Werror $files; then
	echo "checkformat: run clang-format -i on the files above" >&2
	exit 1
fi
echo "checkformat: $(echo "$files" | wc -l) files formatted"
