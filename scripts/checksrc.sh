#!/bin/sh
# Fails when C sources use a banned call (STYLE.md rule 11).
set -eu
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|system|popen|sscanf)[[:space:]]*\('
if grep -nE "$banned" $(find broker backends fusefs tests -name '*.[ch]') ; then
	echo "checksrc: banned call(s) above" >&2
	exit 1
fi
echo "checksrc: 1 passed, 0 failed"
