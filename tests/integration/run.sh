#!/bin/sh
# SPDX-License-Identifier: MIT
# Run every scenario (NN_*.sh) of a suite directory with a timeout; a
# scenario exits 77 to skip (with its reason). Prints a closing
# "LABEL: N passed, N failed, N skipped" line and fails if any failed.
#   run.sh [DIR [LABEL [TIMEOUT_S]]]   (default: this directory,
#                                       "integration", 180 s per scenario)
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here}
label=${2:-integration}
limit=${3:-180}
cd "$dir" || exit 1
: "${SHOAL:?SHOAL must point at the shoal binary}"
export SHOAL
MULT=${SHOAL_TEST_TIMEOUT_MULT:-1}
pass=0
fail=0
skip=0
failed=
for t in ${SHOAL_TESTS:-[0-9][0-9]_*.sh}; do
	start=$(date +%s)
	timeout $((limit * MULT)) sh "./$t"
	st=$?
	if [ "$st" -eq 0 ]; then
		pass=$((pass + 1))
		echo "ok   $t ($(( $(date +%s) - start )) s)"
	elif [ "$st" -eq 77 ]; then
		skip=$((skip + 1))
		echo "skip $t"
	else
		fail=$((fail + 1))
		failed="$failed $t"
		echo "FAIL $t ($(( $(date +%s) - start )) s)"
	fi
done
echo "$label: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] || { echo "failed:$failed" >&2; exit 1; }
