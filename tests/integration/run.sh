#!/bin/sh
# SPDX-License-Identifier: MIT
# Run every integration scenario (NN_*.sh) with a timeout; print a closing
# "N passed, N failed" line and fail if any scenario failed.
cd "$(dirname "$0")" || exit 1
: "${SHOAL:?SHOAL must point at the shoal binary}"
export SHOAL
MULT=${SHOAL_TEST_TIMEOUT_MULT:-1}
pass=0
fail=0
failed=
for t in ${SHOAL_TESTS:-[0-9][0-9]_*.sh}; do
	start=$(date +%s)
	if timeout $((180 * MULT)) sh "./$t"; then
		pass=$((pass + 1))
		echo "ok   $t ($(( $(date +%s) - start )) s)"
	else
		fail=$((fail + 1))
		failed="$failed $t"
		echo "FAIL $t ($(( $(date +%s) - start )) s)"
	fi
done
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed" >&2; exit 1; }
