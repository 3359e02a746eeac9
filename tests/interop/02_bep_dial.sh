# SPDX-License-Identifier: MIT
# 01_bep_index.sh with Shoal as the dialling side (TLS client role).
SHOAL_DIALS=1
export SHOAL_DIALS
exec sh ./01_bep_index.sh
