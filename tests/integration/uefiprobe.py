#!/usr/bin/env python3
"""uefiprobe - a UEFI (EDK2 Mtftp4) boot's TFTP pattern against tftpgw.

EDK2 first asks for the size: RRQ with blksize 1468, windowsize 4 and
tsize 0; it takes the OACK's tsize and declines the OACK with ERROR 8
(RFC 2347). Then it downloads with a new RRQ from a new source port.

  uefiprobe.py HOST PORT REMOTE LOCAL [--bind ADDR] [--probe-only]
               [--no-tsize] [--no-probe]

Prints "tsize N" after the probe and "bytes N" after the download, whose
bytes go to LOCAL. --no-tsize leaves tsize out of the download's RRQ;
--no-probe downloads only. Exit status: 0 ok, 1 failure (reason on stderr).
"""

import argparse
import sys

import tftpraw

OPTS = [("blksize", "1468"), ("windowsize", "4")]


def probe(a):
    with tftpraw.Client(a.host, a.port, timeout=1.0, retries=3, bind_host=a.bind) as c:
        res = tftpraw.Result()
        pkt = c._first_reply(tftpraw.build_rrq(a.remote, "octet", OPTS + [("tsize", "0")]),
                             res, (tftpraw.OACK,))
        tsize = pkt.opts().get("tsize")
        if tsize is None:
            raise SystemExit("OACK without tsize: %r" % (pkt,))
        c.send_raw(tftpraw.build_error(8, "option negotiation refused"), res.server)
        print("tsize %s" % tsize)
        return int(tsize)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("remote")
    p.add_argument("local")
    p.add_argument("--bind", default=None)
    p.add_argument("--probe-only", action="store_true")
    p.add_argument("--no-probe", action="store_true")
    p.add_argument("--no-tsize", action="store_true")
    a = p.parse_args()
    try:
        tsize = None if a.no_probe else probe(a)
        if a.probe_only:
            return 0
        opts = list(OPTS)
        if not a.no_tsize:
            opts.append(("tsize", str(tsize if tsize is not None else 0)))
        with tftpraw.Client(a.host, a.port, timeout=1.0, retries=5, bind_host=a.bind) as c:
            res = c.get(a.remote, "octet", opts)
        if tsize is not None and len(res.data) != tsize:
            sys.stderr.write("downloaded %d bytes, the probe said %d\n" % (len(res.data), tsize))
            return 1
        with open(a.local, "wb") as f:
            f.write(res.data)
        print("bytes %d" % len(res.data))
        return 0
    except (tftpraw.TftpError, tftpraw.Timeout, tftpraw.ProtocolViolation) as e:
        sys.stderr.write("%s: %s\n" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
