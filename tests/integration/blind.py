#!/usr/bin/env python3
"""blind - what a blind, off-path sender can make tftpgw do (tests/integration/sec_core.sh).

A blind sender forges the source address of a victim and never sees the
answers. Here the "victim" is a UDP socket on a loopback address that sends
the forged packets itself and then only counts what arrives, never answering:
to the gateway that is the same as a spoofed request, and the count is what
the gateway reflects at the victim (docs/security.md).

  blind.py reflect HOST PORT FILE [--src ADDR] [-o k=v ...] [--ack0 S]
                   [--ack N ...] [--listen S]
      RRQ from the victim; optionally, S seconds later, a blind ACK 0 and
      then each --ack block number, all to HOST:PORT (the listening port:
      in single-port mode it is the transfer's port too). Counts every
      datagram and byte the victim receives for --listen seconds.
  blind.py put HOST PORT NAME [--src ADDR] [--listen S]
      WRQ and, 0.2 s later (once the store is open), DATA 1 (7 bytes,
      the final block), both to HOST:PORT, never reading what comes back.
  blind.py flood HOST PORT FILE COUNT [-o k=v ...]
      COUNT RRQs from COUNT distinct addresses 127.77.x.y, each from a
      socket closed at once (nobody will ever answer).

Prints one JSON object: bytes, datagrams, the kinds seen ("DATA", "OACK",
"ERROR 4", ...) and the source ports they came from. Every wait is bounded.
"""

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tftpraw  # noqa: E402


def victim(src):
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((src, 0))
    return s


def kind(d):
    if len(d) < 2:
        return "short"
    op = struct.unpack("!H", d[:2])[0]
    if op == tftpraw.ERROR and len(d) >= 4:
        return "ERROR %d" % struct.unpack("!H", d[2:4])[0]
    return tftpraw.OPNAMES.get(op, "op%d" % op)


def count(s, seconds, out):
    """Receive until `seconds` pass; fold what came into out."""
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        r, _, _ = select.select([s], [], [], left)
        if not r:
            return
        d, addr = s.recvfrom(70000)
        out["bytes"] += len(d)
        out["datagrams"] += 1
        k = kind(d)
        out["kinds"][k] = out["kinds"].get(k, 0) + 1
        if addr[1] not in out["ports"]:
            out["ports"].append(addr[1])
        if k.startswith("ERROR") and not out["error_text"]:
            out["error_text"] = d[4:].split(b"\0")[0].decode("latin-1")


def new_tally():
    return {"bytes": 0, "datagrams": 0, "kinds": {}, "ports": [], "error_text": ""}


def reflect(a):
    s = victim(a.src)
    dst = (a.host, a.port)
    out = new_tally()
    s.sendto(tftpraw.build_rrq(a.file, options=a.opts), dst)
    if a.ack0 is not None:
        count(s, a.ack0, out)
        s.sendto(tftpraw.build_ack(0), dst)
        for n in a.ack:
            s.sendto(tftpraw.build_ack(n), dst)
    count(s, a.listen, out)
    return out


def put(a):
    s = victim(a.src)
    dst = (a.host, a.port)
    out = new_tally()
    s.sendto(tftpraw.build_wrq(a.name), dst)
    count(s, 0.2, out)
    s.sendto(tftpraw.build_data(1, b"forged\n"), dst)
    count(s, a.listen, out)
    return out


def flood(a):
    req = tftpraw.build_rrq(a.file, options=a.opts)
    sent = 0
    t0 = time.monotonic()
    for i in range(a.count):
        if time.monotonic() - t0 > 60:
            break
        src = "127.77.%d.%d" % (1 + i // 250, 1 + i % 250)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((src, 0))
            s.sendto(req, (a.host, a.port))
            sent += 1
        except OSError:
            pass
        finally:
            s.close()
    return {"sent": sent, "seconds": round(time.monotonic() - t0, 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("reflect", "put", "flood"):
        q = sub.add_parser(name)
        q.add_argument("host")
        q.add_argument("port", type=int)
        q.add_argument("file" if name != "put" else "name")
        if name == "flood":
            q.add_argument("count", type=int)
        q.add_argument("--src", default="127.0.0.77")
        q.add_argument("-o", dest="optlist", action="append", default=[])
        q.add_argument("--ack0", type=float)
        q.add_argument("--ack", type=int, action="append", default=[])
        q.add_argument("--listen", type=float, default=5.0)
    a = p.parse_args()
    a.opts = [tuple(o.split("=", 1)) for o in a.optlist]
    a.listen = min(a.listen, 30.0)
    out = {"reflect": reflect, "put": put, "flood": flood}[a.cmd](a)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
