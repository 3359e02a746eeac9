#!/bin/sh
# SPDX-License-Identifier: MIT
# Run every interop scenario (NN_*.sh) against Debian's syncthing with the
# integration runner; a scenario exits 77 to skip.
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../integration/run.sh" "$here" interop 240
