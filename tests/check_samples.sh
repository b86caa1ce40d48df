#!/bin/sh
# The published API samples the unit suites read are kept in the fuzz corpus
# (a clone may lack ../shared); where ../shared is present they must be
# byte-identical to it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shared=${CB_SHARED_DIR:-$here/../../shared}
if [ ! -d "$shared/testdata/vault-api" ]; then
	echo "check_samples: $shared/testdata not present; nothing to compare"
	exit 0
fi
n=0
for f in "$here"/fuzz/corpus/vault_api/*.response.json; do
	b=$(basename "$f")
	if ! cmp -s "$f" "$shared/testdata/vault-api/$b"; then
		echo "check_samples: $b differs from $shared/testdata/vault-api/$b" >&2
		exit 1
	fi
	n=$((n + 1))
done
sts=aws-sts-AssumeRoleWithWebIdentity.response.xml
if ! cmp -s "$here/fuzz/corpus/aws_xml/$sts" "$shared/testdata/cloud-api/$sts"; then
	echo "check_samples: $sts differs from $shared/testdata/cloud-api/$sts" >&2
	exit 1
fi
if ! diff -r "$here/data/sigv4" "$shared/testdata/sigv4" >/dev/null; then
	echo "check_samples: tests/data/sigv4 differs from $shared/testdata/sigv4" >&2
	exit 1
fi
echo "check_samples: $n samples identical to $shared/testdata/vault-api;" \
	"the STS sample and the sigv4 suite identical"
