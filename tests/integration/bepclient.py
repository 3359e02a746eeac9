#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A small scripted BEP client for hostile-peer tests.

It authenticates correctly (TLS with a Shoal-made certificate, Hello,
ClusterConfig) and then sends one kind of bad input, and reports how the
server reacted: whether it closed the connection, and what it sent.

  bepclient.py HOME HOST PORT SERVER_ID FOLDER SCENARIO [ARG]

Scenarios: ok, garbage, bigheader, biglen, badlz4, badname, absname,
dotdot, outside, beforecc, hugereq.
Exit status 0 when the server behaved as the scenario expects.

  bepclient.py liar HOME PORT_FILE PEER_ID FOLDER

listens on 127.0.0.1 (port written to PORT_FILE), accepts one connection
from PEER_ID, announces a file "lie.txt" whose block hash is that of
"xxxxx", and answers every Request with "yyyyy": a peer that lies.
Only the standard library is used; protobuf is encoded by hand.
"""
import hashlib
import os
import socket
import ssl
import struct
import sys
import time

MAGIC = 0x2EA7D90B


def varint(v):
    out = b""
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wt, payload):
    key = varint((num << 3) | wt)
    if wt == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def s(num, text):
    return field(num, 2, text.encode() if isinstance(text, str) else text)


def b32decode_id(dev_id):
    import base64
    clean = dev_id.replace("-", "")
    # Drop the check characters at positions 13, 27, 41, 55.
    raw = "".join(clean[i * 14:i * 14 + 13] for i in range(4))
    return base64.b32decode(raw + "====")


def frame(mtype, body):
    hdr = field(1, 0, mtype) if mtype else b""
    return struct.pack(">H", len(hdr)) + hdr + struct.pack(">I", len(body)) + body


def hello(name):
    body = s(1, name) + s(2, "bepclient") + s(3, "v0.0.1")
    return struct.pack(">IH", MAGIC, len(body)) + body


def cluster_config(folder, my_raw, server_raw):
    dev_me = s(1, my_raw) + s(2, "hostile")
    dev_srv = s(1, server_raw) + s(2, "server")
    fol = s(1, folder) + field(16, 2, dev_me) + field(16, 2, dev_srv)
    return frame(0, field(1, 2, fol))


def fileinfo(name, size=5):
    blk = field(1, 0, 0) + field(2, 0, size) + s(3, hashlib.sha256(b"x" * size).digest())
    vec = field(1, 2, field(1, 0, 1) + field(2, 0, 1))
    return (s(1, name) + field(3, 0, size) + field(4, 0, 0o644) +
            field(5, 0, 1700000000) + field(9, 2, vec) + field(10, 0, 1) +
            field(16, 2, blk))


def index(folder, fi):
    return frame(1, s(1, folder) + field(2, 2, fi))


def request(folder, name, offset, size, rid=1):
    body = (field(1, 0, rid) + s(2, folder) + s(3, name) + field(4, 0, offset) +
            field(5, 0, size))
    return frame(3, body)


def recv_all(sock, timeout):
    """Read until the peer closes or `timeout` passes; return (data, closed)."""
    sock.settimeout(0.2)
    data = b""
    end = time.time() + timeout
    while time.time() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ssl.SSLError, OSError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def parse_frames(data):
    """Split post-Hello bytes into (type, body) pairs, best effort."""
    out = []
    while len(data) >= 6:
        hl = struct.unpack(">H", data[:2])[0]
        hdr = data[2:2 + hl]
        mtype = 0
        if len(hdr) >= 2 and hdr[0] == 0x08:
            mtype = hdr[1]
        ml = struct.unpack(">I", data[2 + hl:6 + hl])[0]
        out.append((mtype, data[6 + hl:6 + hl + ml]))
        data = data[6 + hl + ml:]
    return out


def read_frames(sock, buf, want_type, timeout=10):
    """Read frames until one of want_type arrives; return (body, rest)."""
    end = time.time() + timeout
    sock.settimeout(0.5)
    while time.time() < end:
        frames = []
        data = buf
        while len(data) >= 6:
            hl = struct.unpack(">H", data[:2])[0]
            if len(data) < 6 + hl:
                break
            ml = struct.unpack(">I", data[2 + hl:6 + hl])[0]
            if len(data) < 6 + hl + ml:
                break
            hdr = data[2:2 + hl]
            mtype = hdr[1] if len(hdr) >= 2 and hdr[0] == 0x08 else 0
            frames.append((mtype, data[6 + hl:6 + hl + ml]))
            data = data[6 + hl + ml:]
        for t, body in frames:
            if t == want_type:
                return body, b""
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            return None, b""
        buf += chunk
    return None, b""


def request_id(body):
    """Field 1 (id) of a Request body."""
    if body[:1] != b"\x08":
        return 0
    v, shift, i = 0, 0, 1
    while True:
        b = body[i]
        v |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return v
        shift += 7


def liar(argv):
    home, port_file, peer_id, folder = argv[2:6]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(home, "cert.pem"), os.path.join(home, "key.pem"))
    ctx.set_alpn_protocols(["bep/1.0"])
    # The peer's certificate is not requested: this liar only needs to be
    # accepted by the peer, which pins our certificate's hash.
    ctx.verify_mode = ssl.CERT_NONE
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(lsock.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    lsock.settimeout(30)
    # The peer may dial before its config shares the folder with us and
    # drop us on our Index (correct: an index for an unshared folder is a
    # protocol error); it redials, so serve a few connections.
    for _attempt in range(5):
        try:
            raw, _ = lsock.accept()
        except socket.timeout:
            return 1
        try:
            if liar_session(ctx, raw, home, peer_id, folder):
                return 0
        except (OSError, ssl.SSLError):
            pass
    return 1


def liar_session(ctx, raw, home, peer_id, folder):
    """One connection: True once a Request was answered with bad data."""
    sock = ctx.wrap_socket(raw, server_side=True)
    with open(os.path.join(home, "cert.pem")) as f:
        my_raw = hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).digest()
    peer_raw = b32decode_id(peer_id)
    sock.sendall(hello("liar"))
    sock.settimeout(10)
    buf = b""
    while len(buf) < 6:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf += chunk
    hl = struct.unpack(">H", buf[4:6])[0]
    while len(buf) < 6 + hl:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf += chunk
    buf = buf[6 + hl:]
    sock.sendall(cluster_config(folder, my_raw, peer_raw))
    # Wait for the peer's ClusterConfig, then announce the lying file.
    body, buf = read_frames(sock, buf, 0)
    if body is None:
        return False
    sock.sendall(index(folder, fileinfo("lie.txt")))
    body, buf = read_frames(sock, buf, 3, timeout=60)
    if body is None:
        return False
    resp = field(1, 0, request_id(body)) + s(2, b"yyyyy")
    sock.sendall(frame(4, resp))
    # Stay until the peer hangs up so it can finish its checks.
    recv_all(sock, 5)
    return True


def main(argv):
    if len(argv) > 1 and argv[1] == "liar":
        return liar(argv)
    home, host, port, server_id, folder, scenario = argv[1:7]
    arg = argv[7] if len(argv) > 7 else None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(os.path.join(home, "cert.pem"), os.path.join(home, "key.pem"))
    ctx.set_alpn_protocols(["bep/1.0"])
    raw = socket.create_connection((host, int(port)), timeout=10)
    sock = ctx.wrap_socket(raw)
    my_der = sock.getpeercert(binary_form=True)
    with open(os.path.join(home, "cert.pem")) as f:
        pem = f.read()
    my_raw = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest()
    server_raw = b32decode_id(server_id)
    if hashlib.sha256(my_der).digest() != server_raw:
        print("server certificate does not match its ID")
        return 1
    sock.sendall(hello("hostile"))
    # Read the server's Hello.
    sock.settimeout(10)
    buf = b""
    while len(buf) < 6:
        buf += sock.recv(65536)
    hl = struct.unpack(">H", buf[4:6])[0]
    while len(buf) < 6 + hl:
        buf += sock.recv(65536)
    rest = buf[6 + hl:]
    if scenario == "beforecc":
        sock.sendall(request(folder, "a.txt", 0, 5))
        data, closed = recv_all(sock, 10)
        print("closed" if closed else "open")
        return 0 if closed else 1
    sock.sendall(cluster_config(folder, my_raw, server_raw))
    if scenario == "ok":
        data, closed = recv_all(sock, 2)
        frames = parse_frames(rest + data)
        print("frames", [t for t, _ in frames], "closed" if closed else "open")
        return 0 if not closed and frames and frames[0][0] == 0 else 1
    bad = {
        "garbage": b"\xff" * 64,
        "bigheader": struct.pack(">H", 0x9000) + b"\x00" * 16,
        "biglen": struct.pack(">H", 0) + struct.pack(">I", 0x7FFFFFFF),
        "badlz4": (struct.pack(">H", 2) + b"\x10\x01" + struct.pack(">I", 10) +
                   struct.pack(">I", 1000000) + b"\xff" * 6),
        "badname": index(folder, fileinfo("a//b")),
        "absname": index(folder, fileinfo("/etc/passwd")),
        "dotdot": index(folder, fileinfo("../escape")),
    }
    if scenario in bad:
        sock.sendall(bad[scenario])
        data, closed = recv_all(sock, 10)
        print("closed" if closed else "open")
        return 0 if closed else 1
    if scenario in ("outside", "hugereq"):
        name = arg or "a.txt"
        size = 5 if scenario == "outside" else 64 * 1024 * 1024
        offset = 1 << 40 if scenario == "outside" else 0
        sock.sendall(request(folder, name, offset, size, rid=7))
        data, closed = recv_all(sock, 3)
        frames = parse_frames(rest + data)
        resp = [b for t, b in frames if t == 4]
        if scenario == "hugereq":
            # A request over 16 MiB is a protocol violation: dropped.
            print("closed" if closed else "open")
            return 0 if closed else 1
        # A request outside the file gets an error code, not data.
        ok = bool(resp) and b"\x18" in resp[0] and not closed
        print("response" if resp else "no response", "closed" if closed else "open")
        return 0 if ok else 1
    print("unknown scenario")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
