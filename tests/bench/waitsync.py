# SPDX-License-Identifier: MIT
"""Wait until node B of tests/bench/sync is in sync; print when it was.

One process polls B's REST API and walks B's tree, instead of a curl, a
jq and a find per poll: those cost 30-40 % of a core at 10 polls a
second, which a 2-core machine takes away from the daemons being timed.

    waitsync.py [--go] KIND URL KEY FILES BYTES TREE TIMEOUT [FILE OFF LEN SHA256]

With --go it prints "ready" once loaded and starts polling only after a
line on stdin, so that its start-up is not inside the timed window. KIND is "sh" (Shoal: GET /rest/status) or "st" (Syncthing: GET
/rest/db/status?folder=f). Exits 0 and prints the Unix time at which every
check first held, or exits 1 after TIMEOUT seconds.
"""

import hashlib
import json
import os
import sys
import time
import urllib.request

INTERVAL = 0.05


def api_ok(kind, url, key, files, size):
    req = urllib.request.Request(url, headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            st = json.load(r)
    except (OSError, ValueError):
        return False
    if kind == "sh":
        for f in st.get("folders", []):
            if f.get("id") == "f":
                return (f.get("in_sync") is True and f.get("need_files") == 0
                        and f.get("global_files") == files
                        and f.get("local_files") == files
                        and f.get("local_bytes") == size)
        return False
    dirs = st.get("localDirectories", 0) + st.get("localSymlinks", 0)
    return (st.get("state") == "idle" and st.get("needTotalItems") == 0
            and st.get("needBytes") == 0 and st.get("globalFiles") == files
            and st.get("localFiles") == files
            and st.get("localBytes", 0) - 128 * dirs == size)


def tree_stats(root):
    n = s = 0
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    if not (d == root and e.name == ".stfolder"):
                        stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    if e.name.startswith((".syncthing.", "~syncthing~")):
                        continue
                    n += 1
                    s += e.stat(follow_symlinks=False).st_size
    return n, s


def region_ok(path, off, length, want):
    try:
        with open(path, "rb") as f:
            f.seek(off)
            return hashlib.sha256(f.read(length)).hexdigest() == want
    except OSError:
        return False


def main(argv):
    go = len(argv) > 1 and argv[1] == "--go"
    if go:
        argv = argv[:1] + argv[2:]
    if len(argv) not in (8, 12):
        sys.stderr.write(__doc__)
        return 2
    kind, url, key = argv[1], argv[2], argv[3]
    files, size, tree = int(argv[4]), int(argv[5]), argv[6]
    region = argv[8:]
    if go:
        print("ready", flush=True)
        if not sys.stdin.readline():
            return 1
    end = time.time() + float(argv[7])
    while time.time() < end:
        if (api_ok(kind, url, key, files, size)
                and tree_stats(tree) == (files, size)
                and (not region or region_ok(region[0], int(region[1]),
                                             int(region[2]), region[3]))):
            print("%.3f" % time.time(), flush=True)
            return 0
        time.sleep(INTERVAL)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
