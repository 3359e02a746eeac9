#!/bin/sh
# SPDX-License-Identifier: MIT
# Run each unit-test binary given on the command line; fail if any fails.
# Prints a closing "N passed, N failed" line.
pass=0
fail=0
failed=
for t in "$@"; do
	if "$t"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		failed="$failed $(basename "$t")"
	fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed" >&2; exit 1; }
