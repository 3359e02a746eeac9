#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Configure and query a Debian `syncthing` node for interop tests.

Everything stays on loopback: listen and GUI addresses are 127.0.0.1,
global discovery, relays, NAT, usage reporting, crash reporting and
upgrades are switched off. Only the standard library is used.

  stctl.py init HOME LISTEN_PORT GUI_PORT [--lan] [--listen-host H]
                                                    prints the device ID
  stctl.py add-device HOME ID NAME ADDRESS
  stctl.py add-folder HOME FOLDER_ID PATH [--type T] [--watch-delay N]
                                                    DEVICE_ID...
                      (--watch-delay: fsWatcherDelayS, default 1 so tests
                       are quick; Syncthing's own default is 10)
  stctl.py get HOME /rest/PATH                      prints the JSON
"""
import json
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET

API_KEY = "shoal-interop-test-key"


def _config(home):
    return home + "/config.xml"


def _set(parent, tag, text):
    el = parent.find(tag)
    if el is None:
        el = ET.SubElement(parent, tag)
    el.text = text


def cmd_init(home, listen_port, gui_port, *flags):
    host = "127.0.0.1"
    if "--listen-host" in flags:
        host = flags[flags.index("--listen-host") + 1]
    out = subprocess.run(["syncthing", "generate", "--home=" + home,
                          "--no-default-folder"], check=True,
                         capture_output=True, text=True)
    dev_id = None
    for line in (out.stdout + out.stderr).splitlines():
        if "Device ID:" in line:
            dev_id = line.split("Device ID:")[1].strip()
    tree = ET.parse(_config(home))
    root = tree.getroot()
    opts = root.find("options")
    _set(opts, "listenAddress", "tcp://%s:%s" % (host, listen_port))
    _set(opts, "globalAnnounceEnabled", "false")
    _set(opts, "localAnnounceEnabled", "true" if "--lan" in flags else "false")
    _set(opts, "relaysEnabled", "false")
    _set(opts, "natEnabled", "false")
    _set(opts, "startBrowser", "false")
    _set(opts, "urAccepted", "-1")
    _set(opts, "autoUpgradeIntervalH", "0")
    _set(opts, "crashReportingEnabled", "false")
    _set(opts, "stunServer", "")
    _set(opts, "insecureAllowOldTLSVersions", "true")
    _set(opts, "reconnectionIntervalS", "1")
    gui = root.find("gui")
    _set(gui, "address", "127.0.0.1:%s" % gui_port)
    _set(gui, "apikey", API_KEY)
    tree.write(_config(home))
    print(dev_id)


def cmd_add_device(home, dev_id, name, address):
    tree = ET.parse(_config(home))
    root = tree.getroot()
    dev = ET.Element("device", {"id": dev_id, "name": name,
                                "compression": "metadata",
                                "introducer": "false"})
    ET.SubElement(dev, "address").text = address
    ET.SubElement(dev, "paused").text = "false"
    # Insert after the existing device elements so the order stays natural.
    idx = max(i for i, el in enumerate(root) if el.tag == "device") + 1
    root.insert(idx, dev)
    tree.write(_config(home))


def cmd_add_folder(home, folder_id, path, *rest):
    ftype = "sendreceive"
    delay = "1"
    devs = []
    it = iter(rest)
    for a in it:
        if a == "--type":
            ftype = next(it)
        elif a == "--watch-delay":
            delay = str(int(next(it)))
            if int(delay) < 1:
                raise ValueError("--watch-delay must be >= 1")
        else:
            devs.append(a)
    tree = ET.parse(_config(home))
    root = tree.getroot()
    own = root.find("device").get("id")
    folder = ET.Element("folder", {"id": folder_id, "label": folder_id,
                                   "path": path, "type": ftype,
                                   "rescanIntervalS": "3600",
                                   "fsWatcherEnabled": "true",
                                   "fsWatcherDelayS": delay})
    for d in [own] + devs:
        ET.SubElement(folder, "device", {"id": d})
    # A folder element written by hand gets maxConflicts 0 (losers deleted,
    # no conflict copies) unless it says otherwise; use Syncthing's default.
    ET.SubElement(folder, "maxConflicts").text = "10"
    root.insert(0, folder)
    tree.write(_config(home))


def cmd_get(home, path):
    tree = ET.parse(_config(home))
    addr = tree.getroot().find("gui").find("address").text
    req = urllib.request.Request("http://%s%s" % (addr, path),
                                 headers={"X-API-Key": API_KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        print(json.dumps(json.load(r)))


def main(argv):
    cmds = {"init": cmd_init, "add-device": cmd_add_device,
            "add-folder": cmd_add_folder, "get": cmd_get}
    if len(argv) < 3 or argv[1] not in cmds:
        sys.stderr.write(__doc__)
        return 2
    try:
        cmds[argv[1]](*argv[2:])
    except (OSError, ValueError, TypeError, subprocess.CalledProcessError) as e:
        sys.stderr.write("stctl: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
