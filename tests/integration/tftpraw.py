#!/usr/bin/env python3
"""tftpraw - a small TFTP toolkit for tftpgw's integration tests (stdlib only).

Packet codec (build_* / parse), and a Client that runs RRQ/WRQ transfers with
options and RFC 7440 windows, or sends arbitrary datagrams and collects what
comes back. Every wait is bounded. Block numbers wrap 65535 -> 0.

Also a command line:
  tftpraw.py get HOST PORT REMOTE LOCAL [-o name=value ...] [--mode M]
  tftpraw.py put HOST PORT LOCAL REMOTE [-o name=value ...] [--block-delay S]
Exit status: 0 ok, 100+code for a TFTP ERROR from the server, 2 timeout,
3 protocol violation seen.
"""

import argparse
import os
import select
import socket
import struct
import sys
import time

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
OPNAMES = {RRQ: "RRQ", WRQ: "WRQ", DATA: "DATA", ACK: "ACK", ERROR: "ERROR",
           OACK: "OACK"}


class Malformed(Exception):
    """A datagram that is not a well-formed TFTP packet."""


class TftpError(Exception):
    """The peer sent ERROR code/msg."""

    def __init__(self, code, msg):
        super().__init__("TFTP ERROR %d: %s" % (code, msg))
        self.code = code
        self.msg = msg


class Timeout(Exception):
    """No usable answer within the retry budget."""


class ProtocolViolation(Exception):
    """The peer broke a rule this client checks (reported, never guessed)."""


# ---------------------------------------------------------------- codec

def _opt_items(options):
    if options is None:
        return []
    if isinstance(options, dict):
        return list(options.items())
    return list(options)


def _b(s):
    return s if isinstance(s, bytes) else str(s).encode("latin-1")


def build_request(op, filename, mode="octet", options=None):
    """RRQ/WRQ; options is a dict or a list of (name, value) pairs (kept in order,
    repeats allowed, so tests can send odd requests)."""
    out = struct.pack("!H", op) + _b(filename) + b"\0" + _b(mode) + b"\0"
    for name, value in _opt_items(options):
        out += _b(name) + b"\0" + _b(value) + b"\0"
    return out


def build_rrq(filename, mode="octet", options=None):
    return build_request(RRQ, filename, mode, options)


def build_wrq(filename, mode="octet", options=None):
    return build_request(WRQ, filename, mode, options)


def build_data(block, payload):
    return struct.pack("!HH", DATA, block & 0xFFFF) + payload


def build_ack(block):
    return struct.pack("!HH", ACK, block & 0xFFFF)


def build_error(code, msg=""):
    return struct.pack("!HH", ERROR, code) + _b(msg) + b"\0"


def build_oack(options):
    out = struct.pack("!H", OACK)
    for name, value in _opt_items(options):
        out += _b(name) + b"\0" + _b(value) + b"\0"
    return out


class Packet:
    """Parsed packet. Fields by opcode: filename/mode/options (requests),
    block/data (DATA), block (ACK), code/msg (ERROR), options (OACK, RRQ, WRQ):
    options is a list of (name, value) str pairs in wire order."""

    def __init__(self, op):
        self.op = op
        self.block = None
        self.data = b""
        self.code = None
        self.msg = ""
        self.filename = None
        self.mode = None
        self.options = []

    def opts(self):
        """Options as a dict with lower-case names (first one wins)."""
        d = {}
        for k, v in self.options:
            d.setdefault(k.lower(), v)
        return d

    def __repr__(self):
        name = OPNAMES.get(self.op, "op%d" % self.op)
        if self.op == DATA:
            return "<DATA %d len=%d>" % (self.block, len(self.data))
        if self.op == ACK:
            return "<ACK %d>" % self.block
        if self.op == ERROR:
            return "<ERROR %d %r>" % (self.code, self.msg)
        if self.op == OACK:
            return "<OACK %r>" % (self.options,)
        return "<%s %r %r %r>" % (name, self.filename, self.mode, self.options)


def _split_strings(body):
    """NUL-terminated strings; Malformed if the last one lacks its NUL."""
    if not body:
        return []
    if body[-1:] != b"\0":
        raise Malformed("string without NUL")
    return [p.decode("latin-1") for p in body[:-1].split(b"\0")]


def parse(dgram):
    if len(dgram) < 2:
        raise Malformed("short datagram (%d bytes)" % len(dgram))
    (op,) = struct.unpack("!H", dgram[:2])
    p = Packet(op)
    body = dgram[2:]
    if op in (RRQ, WRQ):
        parts = _split_strings(body)
        if len(parts) < 2 or len(parts) % 2:
            raise Malformed("bad request field count")
        p.filename, p.mode = parts[0], parts[1]
        p.options = list(zip(parts[2::2], parts[3::2]))
    elif op == DATA:
        if len(body) < 2:
            raise Malformed("short DATA")
        (p.block,) = struct.unpack("!H", body[:2])
        p.data = body[2:]
    elif op == ACK:
        if len(body) != 2:
            raise Malformed("ACK of %d bytes" % len(dgram))
        (p.block,) = struct.unpack("!H", body)
    elif op == ERROR:
        if len(body) < 3 or body[-1:] != b"\0":
            raise Malformed("ERROR without message NUL")
        (p.code,) = struct.unpack("!H", body[:2])
        p.msg = body[2:-1].decode("latin-1")
        if "\0" in p.msg:
            raise Malformed("ERROR with embedded NUL")
    elif op == OACK:
        parts = _split_strings(body)
        if len(parts) % 2:
            raise Malformed("OACK with odd string count")
        p.options = list(zip(parts[0::2], parts[1::2]))
    else:
        raise Malformed("unknown opcode %d" % op)
    return p


# ---------------------------------------------------------------- netascii

def to_netascii(data):
    """Local (LF) text to wire form: LF -> CR LF, bare CR -> CR NUL."""
    out = bytearray()
    for c in data:
        if c == 0x0A:
            out += b"\r\n"
        elif c == 0x0D:
            out += b"\r\0"
        else:
            out.append(c)
    return bytes(out)


def from_netascii(data):
    """Wire form to local: CR LF -> LF, CR NUL -> CR (strict; raises on others)."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        c = data[i]
        if c == 0x0D:
            if i + 1 >= n:
                raise ValueError("netascii ends in CR")
            nxt = data[i + 1]
            if nxt == 0x0A:
                out.append(0x0A)
            elif nxt == 0x00:
                out.append(0x0D)
            else:
                raise ValueError("CR followed by 0x%02x at %d" % (nxt, i))
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


# ---------------------------------------------------------------- client

class Result:
    def __init__(self):
        self.data = b""          # payload received (get) or sent (put), wire bytes
        self.oack = None         # Packet or None
        self.first = None        # first reply Packet from the server
        self.server = None       # (host, port) of the server's TID
        self.blksize = 512
        self.windowsize = 1
        self.data_packets = 0    # DATA datagrams received (get) / sent (put)
        self.retransmits = 0     # our retransmissions after timeouts
        self.foreign = []        # (addr, Packet-or-bytes) from other addresses
        self.tids = set()        # every server address that sent us something
        self.final_ack = True    # put: the last DATA was ACKed
        self.stale_acks = 0      # put: duplicate or old ACKs ignored
        self.acks = 0            # put: ACK datagrams from the server TID
        self.elapsed = 0.0


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host="127.0.0.1", kind=socket.SOCK_DGRAM):
    s = socket.socket(family_of(host), kind)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Client:
    """One client TID (one UDP socket). timeout: seconds per retransmission
    (no backoff, to keep tests quick); retries: retransmissions before Timeout."""

    def __init__(self, host, port, timeout=1.0, retries=5, bind_host=None):
        self.host = host
        self.port = port
        self.server = (host, port)
        self.timeout = timeout
        self.retries = retries
        self.sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((bind_host or host, 0))
        self.trace = os.environ.get("TFTPRAW_TRACE") == "1"

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    @property
    def addr(self):
        return self.sock.getsockname()[:2]

    def _log(self, what, addr, pkt):
        if self.trace:
            sys.stderr.write("%.3f %s %s %r\n" % (time.monotonic(), what, addr, pkt))

    def send_raw(self, dgram, addr=None):
        addr = addr or self.server
        self.sock.sendto(dgram, addr)
        if self.trace:
            try:
                self._log("->", addr, parse(dgram))
            except Malformed:
                self._log("->", addr, dgram[:40])

    def recv_raw(self, timeout):
        """(bytes, addr) or None after timeout seconds."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return None
        dgram, addr = self.sock.recvfrom(70000)
        return dgram, addr[:2]

    def recv(self, timeout):
        """(Packet-or-None, addr, raw) or None; Packet None when malformed."""
        got = self.recv_raw(timeout)
        if got is None:
            return None
        dgram, addr = got
        try:
            pkt = parse(dgram)
        except Malformed:
            pkt = None
        self._log("<-", addr, pkt if pkt is not None else dgram[:40])
        return pkt, addr, dgram

    def collect(self, duration):
        """Every datagram that arrives within duration seconds: [(Packet|None, addr, raw)]."""
        out = []
        end = time.monotonic() + duration
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return out
            got = self.recv(left)
            if got is not None:
                out.append(got)

    # -- helpers for both directions

    def _first_reply(self, req, res, accept_ops):
        """Send req until a reply from any address arrives; return that Packet."""
        for attempt in range(self.retries + 1):
            if attempt:
                res.retransmits += 1
            self.send_raw(req)
            end = time.monotonic() + self.timeout
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                got = self.recv(left)
                if got is None:
                    break
                pkt, addr, raw = got
                if pkt is None:
                    raise ProtocolViolation("malformed first reply %r from %s" % (raw[:32], addr))
                if pkt.op == ERROR:
                    res.server = addr
                    raise TftpError(pkt.code, pkt.msg)
                if pkt.op not in accept_ops:
                    raise ProtocolViolation("unexpected first reply %r" % pkt)
                res.server = addr
                res.tids.add(addr)
                res.first = pkt
                return pkt
        raise Timeout("no reply to request after %d tries" % (self.retries + 1))

    def _check_oack(self, pkt, requested):
        req = {k.lower(): v for k, v in _opt_items(requested)}
        seen = set()
        for k, _ in pkt.options:
            kl = k.lower()
            if kl in seen:
                raise ProtocolViolation("OACK repeats option %s" % k)
            seen.add(kl)
            if kl not in req:
                raise ProtocolViolation("OACK has unrequested option %s" % k)
        if not pkt.options:
            raise ProtocolViolation("empty OACK")

    def _foreign(self, res, addr, pkt, raw):
        """A packet from an address that is not the server TID: answer ERROR 5."""
        res.foreign.append((addr, pkt if pkt is not None else raw))
        res.tids.add(addr)
        if pkt is None or pkt.op != ERROR:
            self.send_raw(build_error(5, "Unknown transfer ID"), addr)

    # -- RRQ

    def get(self, filename, mode="octet", options=None, hook=None, dally=0.0,
            max_bytes=None):
        """Download; returns Result with .data as received on the wire (netascii
        is not converted). hook(client, result, block) runs after each new block.
        dally: seconds to linger after the final ACK, re-ACKing a repeated last DATA."""
        res = Result()
        t0 = time.monotonic()
        req = build_rrq(filename, mode, options)
        first = self._first_reply(req, res, (DATA, OACK))
        blksize, window = 512, 1
        if first.op == OACK:
            if not options:
                raise ProtocolViolation("OACK to a request without options")
            self._check_oack(first, options)
            res.oack = first
            o = first.opts()
            if "blksize" in o:
                blksize = int(o["blksize"])
            if "windowsize" in o:
                window = int(o["windowsize"])
        res.blksize, res.windowsize = blksize, window
        chunks = []
        last = 0                 # absolute number of the last in-order block
        in_window = 0
        acked = None             # last block we ACKed and when
        acked_at = 0.0
        done = False
        pending = None
        if first.op == DATA:
            pending = (first, res.server, None)
        else:
            self.send_raw(build_ack(0), res.server)
            acked, acked_at = 0, time.monotonic()
        tries = 0
        while not done:
            if pending is not None:
                got, pending = pending, None
            else:
                got = self.recv(self.timeout)
            if got is None:
                tries += 1
                if tries > self.retries:
                    raise Timeout("no DATA after block %d" % last)
                res.retransmits += 1
                self.send_raw(build_ack(last), res.server)
                acked, acked_at = last, time.monotonic()
                in_window = 0
                continue
            pkt, addr, raw = got
            if addr != res.server:
                self._foreign(res, addr, pkt, raw)
                continue
            if pkt is None:
                raise ProtocolViolation("malformed packet from server: %r" % raw[:32])
            if pkt.op == ERROR:
                raise TftpError(pkt.code, pkt.msg)
            if pkt.op == OACK:
                continue         # a retransmitted OACK: our ACK 0 is on its way or lost
            if pkt.op != DATA:
                raise ProtocolViolation("unexpected %r during RRQ" % pkt)
            if len(pkt.data) > blksize:
                raise ProtocolViolation("DATA %d has %d bytes > blksize %d"
                                        % (pkt.block, len(pkt.data), blksize))
            res.data_packets += 1
            tries = 0
            if pkt.block == (last + 1) & 0xFFFF:
                last += 1
                in_window += 1
                chunks.append(pkt.data)
                if hook:
                    hook(self, res, last)
                if max_bytes is not None and sum(map(len, chunks)) > max_bytes:
                    raise ProtocolViolation("more than %d bytes" % max_bytes)
                if len(pkt.data) < blksize:
                    done = True
                if done or in_window >= window:
                    self.send_raw(build_ack(last), res.server)
                    acked, acked_at = last, time.monotonic()
                    in_window = 0
            else:
                # RFC 7440 4: out of order or repeated -> ACK the last in-order
                # block, at most once per half timeout so a burst of stragglers
                # does not become an ACK storm.
                if acked != last or time.monotonic() - acked_at > self.timeout / 2:
                    self.send_raw(build_ack(last), res.server)
                    acked, acked_at = last, time.monotonic()
                    in_window = 0
        res.data = b"".join(chunks)
        if dally > 0:
            end = time.monotonic() + dally
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                got = self.recv(left)
                if got is None:
                    break
                pkt, addr, raw = got
                if addr != res.server:
                    self._foreign(res, addr, pkt, raw)
                elif pkt is not None and pkt.op == DATA:
                    self.send_raw(build_ack(last), res.server)
        res.elapsed = time.monotonic() - t0
        return res

    # -- WRQ

    def put(self, filename, data, mode="octet", options=None, hook=None,
            block_delay=0.0):
        """Upload data (wire bytes: convert netascii first with to_netascii).
        hook(client, result, block) runs after each new ACK. block_delay
        sleeps before each new DATA (a slow client)."""
        res = Result()
        t0 = time.monotonic()
        req = build_wrq(filename, mode, options)
        first = self._first_reply(req, res, (ACK, OACK))
        blksize, window = 512, 1
        if first.op == OACK:
            if not options:
                raise ProtocolViolation("OACK to a request without options")
            self._check_oack(first, options)
            res.oack = first
            o = first.opts()
            if "blksize" in o:
                blksize = int(o["blksize"])
            if "windowsize" in o:
                window = int(o["windowsize"])
        elif first.block != 0:
            raise ProtocolViolation("first ACK is %d, not 0" % first.block)
        res.blksize, res.windowsize = blksize, window
        nblocks = len(data) // blksize + 1        # the last one is short or empty

        def block(i):                             # i: 1-based absolute
            return data[(i - 1) * blksize:i * blksize]

        base = 1                                  # first unACKed block
        sent_hi = 0                               # highest block sent so far
        tries = 0
        while base <= nblocks:
            hi = min(base + window - 1, nblocks)
            for i in range(base, hi + 1):
                if i > sent_hi and block_delay:
                    time.sleep(block_delay)
                self.send_raw(build_data(i, block(i)), res.server)
                res.data_packets += 1
            sent_hi = max(sent_hi, hi)
            end = time.monotonic() + self.timeout
            advanced = False
            while not advanced:
                left = end - time.monotonic()
                if left <= 0:
                    break
                got = self.recv(left)
                if got is None:
                    break
                pkt, addr, raw = got
                if addr != res.server:
                    self._foreign(res, addr, pkt, raw)
                    continue
                if pkt is None:
                    raise ProtocolViolation("malformed packet from server: %r" % raw[:32])
                if pkt.op == ERROR:
                    raise TftpError(pkt.code, pkt.msg)
                if pkt.op == OACK or (pkt.op == ACK and first.op == ACK and
                                      pkt.block == 0 and base == 1):
                    continue
                if pkt.op != ACK:
                    raise ProtocolViolation("unexpected %r during WRQ" % pkt)
                res.acks += 1
                # distance from the last ACKed block, mod 2^16
                diff = (pkt.block - (base - 1)) & 0xFFFF
                if diff == 0 or diff >= 0x8000:
                    res.stale_acks += 1
                    # duplicate or older ACK: never resend because of it
                    # (RFC 1123 4.2.3.1)
                    continue
                n = base - 1 + diff
                if n > hi:
                    raise ProtocolViolation("ACK %d for a block never sent (base %d, hi %d)"
                                            % (pkt.block, base, hi))
                base = n + 1
                advanced = True
                tries = 0
                if hook:
                    hook(self, res, n)
            if not advanced:
                tries += 1
                if tries > self.retries:
                    if base == nblocks:
                        res.final_ack = False
                    raise Timeout("no ACK after block %d (of %d)" % (base - 1, nblocks))
                res.retransmits += 1
        res.data = data
        res.elapsed = time.monotonic() - t0
        return res


# ---------------------------------------------------------------- CLI

def _parse_opts(items):
    out = []
    for it in items or []:
        k, _, v = it.partition("=")
        out.append((k, v))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=("get", "put"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("-o", "--option", action="append", help="name=value")
    ap.add_argument("--mode", default="octet")
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--retries", type=int, default=5)
    ap.add_argument("--block-delay", type=float, default=0.0)
    ap.add_argument("--dally", type=float, default=0.0)
    a = ap.parse_args(argv)
    opts = _parse_opts(a.option) or None
    try:
        with Client(a.host, a.port, a.timeout, a.retries) as c:
            if a.cmd == "get":
                # --block-delay makes a slow reader too (drain and reload tests)
                slow = (lambda c, r, b: time.sleep(a.block_delay)) if a.block_delay else None
                r = c.get(a.src, a.mode, opts, hook=slow, dally=a.dally)
                data = from_netascii(r.data) if a.mode.lower() == "netascii" else r.data
                with open(a.dst, "wb") as f:
                    f.write(data)
            else:
                with open(a.src, "rb") as f:
                    data = f.read()
                if a.mode.lower() == "netascii":
                    data = to_netascii(data)
                r = c.put(a.dst, data, a.mode, opts, block_delay=a.block_delay)
            print("ok bytes=%d blksize=%d windowsize=%d retransmits=%d oack=%s elapsed=%.2f"
                  % (len(r.data), r.blksize, r.windowsize, r.retransmits,
                     r.oack.options if r.oack else None, r.elapsed))
            return 0
    except TftpError as e:
        print("error %d %s" % (e.code, e.msg))
        return 100 + e.code
    except Timeout as e:
        print("timeout: %s" % e)
        return 2
    except ProtocolViolation as e:
        print("violation: %s" % e)
        return 3


if __name__ == "__main__":
    sys.exit(main())
