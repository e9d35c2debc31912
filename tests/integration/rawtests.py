#!/usr/bin/env python3
"""rawtests - protocol-level checks of a running tftpgw, driven by tftpraw.

  rawtests.py NAME --host 127.0.0.1 --port P --root DIR [--peer]

Runs one named check against a gateway that run.sh has started with the
configuration that check needs (see run.sh). Prints one line: "ok" or the
reason it failed; exit 0 pass, 1 fail, 77 skip. --peer marks a run against
a reference server (tftpd-hpa), where gateway-only rules are skipped.
Fixture names (f1, f50k, ...) are the ones run.sh puts into the root.
"""

import argparse
import hashlib
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tftpraw as T  # noqa: E402


class Fail(Exception):
    pass


class Skip(Exception):
    pass


CTX = None


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def root_file(rel):
    return os.path.join(CTX.root, rel)


def read_root(rel):
    with open(root_file(rel), "rb") as f:
        return f.read()


def client(timeout=1.0, retries=5):
    return T.Client(CTX.host, CTX.port, timeout, retries)


def same(got, want, what):
    check(got == want, "%s: got %d bytes sha %s, want %d bytes sha %s"
          % (what, len(got), sha(got), len(want), sha(want)))


def expect_error(fn, code, what):
    try:
        fn()
    except T.TftpError as e:
        check(e.code == code, "%s: got ERROR %d (%s), want ERROR %d"
              % (what, e.code, e.msg, code))
        return e
    except T.Timeout as e:
        raise Fail("%s: no answer (%s), want ERROR %d" % (what, e, code))
    raise Fail("%s: succeeded, want ERROR %d" % (what, code))


def probe(op, filename, mode="octet", options=None, wait=2.0):
    """Send one request, return the first reply Packet and abort politely:
    ERROR 8 after an OACK (RFC 2347, Negotiation Protocol), ERROR 0 after
    DATA/ACK."""
    with client() as c:
        c.send_raw(T.build_request(op, filename, mode, options))
        got = c.recv(wait)
        check(got is not None, "%s %r %r: no reply within %.1fs"
              % (T.OPNAMES[op], filename, options, wait))
        pkt, addr, raw = got
        check(pkt is not None, "%s %r: malformed reply %r" % (T.OPNAMES[op], filename, raw[:40]))
        if pkt.op == T.OACK:
            c.send_raw(T.build_error(8, "probe done"), addr)
        elif pkt.op in (T.DATA, T.ACK):
            c.send_raw(T.build_error(0, "probe done"), addr)
        return pkt


def oack_of(op, filename, options, mode="octet"):
    """The OACK options as a dict (lower-case names), or None if the first
    reply was DATA 1 / ACK 0. Fails on anything else."""
    p = probe(op, filename, mode, options)
    if p.op == T.ERROR:
        raise Fail("%s %s %r: ERROR %d %s" % (T.OPNAMES[op], filename, options, p.code, p.msg))
    if p.op == T.OACK:
        names = [k.lower() for k, _ in p.options]
        check(len(names) == len(set(names)), "OACK repeats an option: %r" % p.options)
        check(names, "empty OACK for %r (send none)" % (options,))
        return p.opts()
    if op == T.RRQ:
        check(p.op == T.DATA and p.block == 1,
              "RRQ %r: first reply %r, want OACK or DATA 1" % (options, p))
    else:
        check(p.op == T.ACK and p.block == 0,
              "WRQ %r: first reply %r, want OACK or ACK 0" % (options, p))
    return None


def gateway_only():
    if CTX.peer:
        raise Skip("gateway-specific rule")


# ------------------------------------------------------------------ tests

def t_oack_none():
    """No options, or only unknown/invalid ones: plain RFC 1350 answer (RFC 2347,
    Negotiation Protocol)."""
    want = read_root("f50k")
    with client() as c:
        r = c.get("f50k")
    check(r.oack is None and r.first.op == T.DATA, "no options: first reply %r" % r.first)
    check(len(r.first.data) == 512, "DATA 1 has %d bytes, want 512" % len(r.first.data))
    same(r.data, want, "get f50k without options")
    for opts in ([("foo", "bar")], [("blksize", "7")], [("blksize", "abc")],
                 [("timeout", "0")], [("timeout", "256")], [("windowsize", "0")],
                 [("blksize", "")], [("foo", "1"), ("bar", "2")]):
        o = oack_of(T.RRQ, "f50k", opts)
        check(o is None, "RRQ %r: got OACK %r, want none (DATA 1)" % (opts, o))
    o = oack_of(T.WRQ, "rw/none-probe", [("foo", "bar")])
    check(o is None, "WRQ foo=bar: got OACK %r, want ACK 0" % (o,))
    with client() as c:
        r = c.put("rw/plain", want)
    check(r.oack is None and r.first.op == T.ACK, "WRQ without options: first %r" % r.first)
    same(read_root("rw/plain"), want, "stored rw/plain")


def t_oack_values():
    """OACK holds exactly the requested and accepted options (RFC 2347,
    Negotiation Protocol)."""
    cases = [
        ("f50k", [("blksize", "1468")], {"blksize": "1468"}),
        ("f50k", [("blksize", "8")], {"blksize": "8"}),
        ("f513", [("tsize", "0")], {"tsize": "513"}),
        ("f5M", [("tsize", "0")], {"tsize": str(5 << 20)}),
        ("f50k", [("timeout", "3")], {"timeout": "3"}),
        ("f50k", [("windowsize", "4")], {"windowsize": "4"}),
        ("f50k", [("foo", "1"), ("blksize", "7"), ("windowsize", "2")], {"windowsize": "2"}),
        ("f50k", [("blksize", "1024"), ("blksize", "2048")], {"blksize": "1024"}),
        ("f50k", [("BlkSize", "1024"), ("TSIZE", "0")], {"blksize": "1024", "tsize": "50000"}),
        ("f50k", [("blksize", "1024"), ("timeout", "3"), ("tsize", "0"), ("windowsize", "4")],
         {"blksize": "1024", "timeout": "3", "tsize": "50000", "windowsize": "4"}),
    ]
    if CTX.peer:   # tftpd-hpa 5.2 knows no windowsize
        cases = [c for c in cases if "windowsize" not in c[2]]
    for name, opts, want in cases:
        got = oack_of(T.RRQ, name, opts)
        check(got == want, "RRQ %s %r: OACK %r, want %r" % (name, opts, got, want))
    # empty file: "tsize 0", or tsize left out (curl 7.88 rejects an OACK with
    # tsize 0, so the gateway may decline it); never another value
    got = oack_of(T.RRQ, "f0", [("tsize", "0")])
    check(got in (None, {"tsize": "0"}), "RRQ f0 tsize=0: OACK %r, want tsize 0 or none" % (got,))
    got = oack_of(T.RRQ, "f0", [("tsize", "0"), ("blksize", "1024")])
    check(got in ({"blksize": "1024"}, {"blksize": "1024", "tsize": "0"}),
          "RRQ f0 tsize=0 blksize=1024: OACK %r" % (got,))
    # no tsize in netascii (docs/protocol.md, Transfer size); tsize alone
    # then means no OACK at all
    got = oack_of(T.RRQ, "text.txt", [("tsize", "0")], mode="netascii")
    if not CTX.peer:
        check(got is None, "netascii RRQ tsize=0: OACK %r, want none" % (got,))
    # full transfers with the negotiated values
    want = read_root("f50k")
    with client() as c:
        r = c.get("f50k", options=[("blksize", "1024"), ("tsize", "0")])
    check(r.blksize == 1024, "blksize used %d" % r.blksize)
    check(r.data_packets == 50000 // 1024 + 1, "got %d DATA, want %d"
          % (r.data_packets, 50000 // 1024 + 1))
    same(r.data, want, "get f50k blksize 1024")
    got = oack_of(T.WRQ, "rw/probe", [("tsize", "4404"), ("blksize", "1468"), ("x", "y")])
    check(got == {"tsize": "4404", "blksize": "1468"}, "WRQ OACK %r" % (got,))
    data = read_root("f4404")
    with client() as c:
        r = c.put("rw/o1", data, options=[("tsize", "4404"), ("blksize", "1468")])
    check(r.oack is not None and r.oack.opts() == {"tsize": "4404", "blksize": "1468"},
          "WRQ OACK %r" % (r.oack,))
    same(read_root("rw/o1"), data, "stored rw/o1")


def t_oack_caps():
    """Caps from [server] max_blksize=1468, max_windowsize=8 (RFC 2348, RFC 7440
    section 3)."""
    for opts, want in (([("blksize", "65464")], {"blksize": "1468"}),
                       ([("blksize", "8192")], {"blksize": "1468"}),
                       ([("blksize", "1469")], {"blksize": "1468"}),
                       ([("blksize", "1468")], {"blksize": "1468"}),
                       ([("blksize", "1000")], {"blksize": "1000"}),
                       ([("windowsize", "64")], {"windowsize": "8"}),
                       ([("windowsize", "65535")], {"windowsize": "8"}),
                       ([("windowsize", "3")], {"windowsize": "3"})):
        got = oack_of(T.RRQ, "f50k", opts)
        check(got == want, "RRQ %r: OACK %r, want %r" % (opts, got, want))
    got = oack_of(T.WRQ, "rw/capprobe", [("blksize", "65464"), ("windowsize", "64")])
    check(got == {"blksize": "1468", "windowsize": "8"}, "WRQ caps: OACK %r" % (got,))
    want = read_root("f50k")
    with client() as c:
        r = c.get("f50k", options=[("blksize", "65464"), ("windowsize", "64")])
    check((r.blksize, r.windowsize) == (1468, 8), "used %d/%d" % (r.blksize, r.windowsize))
    same(r.data, want, "get f50k with capped options")


def t_oack_default_caps():
    """Default caps: max_blksize 65464, max_windowsize 64."""
    got = oack_of(T.RRQ, "f5M", [("blksize", "65464")])
    check(got == {"blksize": "65464"}, "blksize 65464: OACK %r" % (got,))
    got = oack_of(T.RRQ, "f5M", [("windowsize", "65535")])
    check(got == {"windowsize": "64"}, "windowsize 65535: OACK %r, want 64" % (got,))
    want = read_root("f5M")
    with client() as c:
        r = c.get("f5M", options=[("blksize", "65464"), ("windowsize", "64"), ("tsize", "0")])
    o = r.oack.opts()
    check(o.get("blksize") == "65464" and o.get("tsize") == str(len(want)), "OACK %r" % o)
    check(1 <= int(o.get("windowsize", "1")) <= 64, "windowsize %r" % o.get("windowsize"))
    same(r.data, want, "get f5M blksize 65464 window %s" % o.get("windowsize"))


def _data_blocks(pkts, tid):
    out = []
    for pkt, addr, raw in pkts:
        check(addr == tid, "packet from %s, not the session TID %s: %r" % (addr, tid, pkt))
        check(pkt is not None and pkt.op == T.DATA, "unexpected %r" % (pkt or raw[:20],))
        out.append(pkt.block)
    return out


def _wait_data(c, n, timeout=3.0):
    """Read n DATA packets; returns [(pkt, addr)]."""
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        got = c.recv(end - time.monotonic())
        check(got is not None, "waited %.1fs for %d DATA, got %d" % (timeout, n, len(out)))
        pkt, addr, raw = got
        check(pkt is not None and pkt.op == T.DATA, "unexpected %r" % (pkt or raw[:20],))
        out.append((pkt, addr))
    return out


def t_dup_ack_ws1():
    """Duplicate ACKs never trigger DATA (RFC 1123 4.2.3.1). Gateway timeout 2 s."""
    with client() as c:
        c.send_raw(T.build_rrq("f50k"))
        (d1, tid), = _wait_data(c, 1)
        check(d1.block == 1, "first DATA is block %d" % d1.block)
        c.send_raw(T.build_ack(1), tid)
        c.send_raw(T.build_ack(1), tid)
        blocks = _data_blocks(c.collect(0.6), tid)
        check(blocks == [2], "after ACK 1 twice: DATA blocks %r, want [2]" % blocks)
        c.send_raw(T.build_ack(2), tid)
        blocks = _data_blocks(c.collect(0.3), tid)
        check(blocks == [3], "after ACK 2: DATA blocks %r, want [3]" % blocks)
        c.send_raw(T.build_ack(2), tid)      # late duplicate after DATA 3 went out
        blocks = _data_blocks(c.collect(0.6), tid)
        check(blocks == [], "late duplicate ACK 2 caused DATA %r" % blocks)
        c.send_raw(T.build_error(0, "test done"), tid)


def t_dup_ack_window():
    """windowsize 4: a repeated ACK of the window's end sends nothing new
    (docs/protocol.md, Duplicate ACKs)."""
    gateway_only()
    with client() as c:
        c.send_raw(T.build_rrq("f50k", options=[("windowsize", "4")]))
        got = c.recv(2.0)
        check(got is not None and got[0] is not None and got[0].op == T.OACK,
              "want OACK, got %r" % (got,))
        tid = got[1]
        c.send_raw(T.build_ack(0), tid)
        blocks = [p.block for p, a in _wait_data(c, 4)]
        check(blocks == [1, 2, 3, 4], "first window %r" % blocks)
        blocks = _data_blocks(c.collect(0.3), tid)
        check(blocks == [], "more than 4 DATA in window 1: extra %r" % blocks)
        c.send_raw(T.build_ack(4), tid)
        c.send_raw(T.build_ack(4), tid)
        blocks = _data_blocks(c.collect(0.6), tid)
        check(blocks == [5, 6, 7, 8], "after ACK 4 twice: DATA %r, want [5, 6, 7, 8]" % blocks)
        c.send_raw(T.build_ack(8), tid)
        blocks = _data_blocks(c.collect(0.3), tid)
        check(blocks == [9, 10, 11, 12], "after ACK 8: DATA %r" % blocks)
        c.send_raw(T.build_ack(8), tid)
        blocks = _data_blocks(c.collect(0.6), tid)
        check(blocks == [], "late duplicate ACK 8 caused DATA %r" % blocks)
        c.send_raw(T.build_error(0, "test done"), tid)


def t_session_tid():
    """Replies come from a new port (the session TID), never the request port
    (RFC 1350 section 4);
    in single-port mode (TG_SERVER_EXTRA has single_port=yes) from the request port."""
    single = "single_port=yes" in os.environ.get("TG_SERVER_EXTRA", "").split()
    with client() as c:
        r = c.get("f4404")
    with client() as c:
        r2 = c.put("rw/tid", b"x" * 600)
    for what, res in (("RRQ", r), ("WRQ", r2)):
        if single:
            check(res.server[1] == CTX.port, "single-port: %s answered from port %d, not %d"
                  % (what, res.server[1], CTX.port))
        else:
            check(res.server[1] != CTX.port, "%s answered from the request port %d" % (what, CTX.port))


def t_wrq_window_acks():
    """WRQ windowsize 8: the gateway ACKs the end of each window, not every block
    (RFC 7440 section 4)."""
    data = read_root("f50k")
    nblocks = len(data) // 512 + 1
    windows = -(-nblocks // 8)
    with client() as c:
        r = c.put("rw/win", data, options=[("windowsize", "8")])
    same(read_root("rw/win"), data, "stored rw/win")
    check(r.windowsize == 8, "windowsize %d negotiated" % r.windowsize)
    check(r.retransmits == 0, "%d retransmissions on loopback" % r.retransmits)
    check(r.acks == windows, "%d ACKs for %d blocks in %d windows of 8 (stale %d)"
          % (r.acks, nblocks, windows, r.stale_acks))


def _arrivals(c, duration, ok):
    """(arrival times in s, source addresses) of what arrives within duration;
    ok(pkt) says which packets are expected at all."""
    t0 = time.monotonic()
    times, tids = [], set()
    while True:
        left = duration - (time.monotonic() - t0)
        if left <= 0:
            return times, tids
        got = c.recv(left)
        if got is None:
            continue
        pkt, addr, raw = got
        check(pkt is not None and ok(pkt), "unexpected %r" % (pkt or raw[:20],))
        times.append(round(time.monotonic() - t0, 2))
        tids.add(addr)


def t_timeout_option():
    """timeout=1 sets the first retransmission interval (RFC 2349; docs/protocol.md,
    Timeouts and retransmission); config says 3 s."""
    with client() as c:
        c.send_raw(T.build_rrq("f4404", options=[("timeout", "1")]))
        got = c.recv(2.0)
        check(got is not None and got[0] is not None and got[0].op == T.OACK,
              "want OACK, got %r" % (got,))
        check(got[0].opts() == {"timeout": "1"}, "OACK %r" % got[0].options)
        tid = got[1]
        c.send_raw(T.build_ack(0), tid)
        (d1, _), = _wait_data(c, 1)
        t0 = time.monotonic()
        got = c.recv(2.5)
        dt = time.monotonic() - t0
        check(got is not None, "DATA 1 not retransmitted within 2.5 s (timeout option 1 s)")
        pkt = got[0]
        check(pkt is not None and pkt.op == T.DATA and pkt.block == 1 and pkt.data == d1.data,
              "retransmission is %r, want the same DATA 1" % (pkt,))
        check(0.6 <= dt <= 1.6, "DATA 1 retransmitted after %.2f s, want about 1 s" % dt)
        c.send_raw(T.build_error(0, "test done"), tid)


def t_unheard_timeout():
    """Until the client answers, the server's interval (timeout=500 here) and one
    retransmission, whatever timeout option the request asked (docs/security.md,
    Reflection)."""
    gateway_only()
    with client() as c:
        c.send_raw(T.build_rrq("f4404", options=[("timeout", "255")]))
        got = c.recv(2.0)
        check(got is not None and got[0] is not None and got[0].op == T.OACK,
              "want OACK, got %r" % (got,))
        t0 = time.monotonic()
        again = c.recv(2.0)
        dt = time.monotonic() - t0
        check(again is not None and again[0] is not None and again[0].op == T.OACK,
              "OACK not retransmitted within 2 s of a request asking timeout=255: %r" % (again,))
        check(dt <= 1.5, "OACK retransmitted after %.2f s, want the server's 0.5 s" % dt)
        late = c.recv(2.5)
        check(late is None, "more than one retransmission to a silent client: %r" % (late,))


def t_retransmit_giveup():
    """No ACK ever: DATA 1 is resent with backoff, at most `retries` times, then
    the session ends (RFC 1350 section 2, RFC 1123 4.2.3.2, RFC 7440 section 6;
    docs/security.md, Reflection). timeout=200 retries=3."""
    with client() as c:
        c.send_raw(T.build_rrq("f4404"))
        times, tids = _arrivals(c, 5.0, lambda p: p.op == T.DATA and p.block == 1)
    check(len(tids) == 1, "answers from %d TIDs" % len(tids))
    check(2 <= len(times) <= 4, "DATA 1 sent %d times at %r s, want 2..4 (1 + at most 3 retries)"
          % (len(times), times))
    gaps = [b - a for a, b in zip(times, times[1:])]
    check(all(g >= 0.15 for g in gaps), "retransmissions too close: %r" % times)
    check(all(b >= a * 0.9 for a, b in zip(gaps, gaps[1:])), "intervals shrink: %r" % times)
    check(times[-1] < 3.5, "still sending at %.1f s" % times[-1])
    with client() as c:
        c.send_raw(T.build_wrq("rw/giveup"))
        times, tids = _arrivals(c, 5.0, lambda p: p.op == T.ACK and p.block == 0)
    check(2 <= len(times) <= 4, "WRQ: ACK 0 sent %d times at %r s, want 2..4" % (len(times), times))
    check(not os.path.exists(root_file("rw/giveup")), "rw/giveup exists after an abandoned WRQ")


def t_foreign_tid():
    """A packet from a foreign TID gets ERROR 5 and the transfer goes on (RFC 1350
    sections 2 and 4)."""
    want = read_root("f50k")
    answers = []

    def intruder(pkt_factory):
        def hook(c, res, block):
            if block != 3:
                return
            with socket.socket(c.sock.family, socket.SOCK_DGRAM) as s:
                s.bind((CTX.host, 0))
                s.sendto(pkt_factory(), res.server)
                s.settimeout(2.0)
                try:
                    dgram, addr = s.recvfrom(70000)
                    answers.append((T.parse(dgram), addr[:2]))
                except (socket.timeout, T.Malformed) as e:
                    answers.append((e, None))
        return hook

    with client() as c:
        r = c.get("f50k", hook=intruder(lambda: T.build_ack(3)))
    same(r.data, want, "RRQ with a foreign ACK")
    check(not r.foreign, "client got packets from other TIDs: %r" % r.foreign)
    pkt, addr = answers[0]
    check(isinstance(pkt, T.Packet) and pkt.op == T.ERROR and pkt.code == 5,
          "RRQ: intruder got %r, want ERROR 5" % (pkt,))
    check(addr == r.server, "ERROR 5 came from %s, not the session TID %s" % (addr, r.server))

    answers.clear()
    data = read_root("f50k")
    with client() as c:
        r = c.put("rw/foreign", data, hook=intruder(lambda: T.build_data(4, b"X" * 512)))
    same(read_root("rw/foreign"), data, "WRQ with a foreign DATA 4")
    pkt, addr = answers[0]
    check(isinstance(pkt, T.Packet) and pkt.op == T.ERROR and pkt.code == 5,
          "WRQ: intruder got %r, want ERROR 5" % (pkt,))


def t_repeat_rrq():
    """A repeated RRQ from the same client port makes no second session
    (docs/protocol.md, Repeated requests)."""
    want = read_root("f50k")
    with client() as c:
        c.send_raw(T.build_rrq("f50k"))
        r = c.get("f50k", dally=0.8)       # sends the RRQ a second time
    same(r.data, want, "get after a doubled RRQ")
    check(len(r.tids) == 1 and not r.foreign,
          "doubled RRQ: answers from %d TIDs %r; foreign %r" % (len(r.tids), sorted(r.tids), r.foreign[:3]))

    def again(c, res, block):
        if block == 1:
            c.send_raw(T.build_rrq("f50k"))
    with client() as c:
        r = c.get("f50k", hook=again, dally=0.8)
    same(r.data, want, "get with RRQ repeated after DATA 1")
    check(len(r.tids) == 1 and not r.foreign,
          "RRQ repeated during the transfer: answers from %d TIDs %r; foreign %r"
          % (len(r.tids), sorted(r.tids), r.foreign[:3]))


def t_error8():
    """ERROR 8 after an OACK ends the session quietly (docs/protocol.md, ERROR 8
    after an OACK). timeout=200 retries=3."""
    gateway_only()
    for op, name, opts in ((T.RRQ, "f50k", [("tsize", "0"), ("blksize", "1468")]),
                           (T.WRQ, "up/e8", [("tsize", "1000"), ("blksize", "1468")])):
        with client() as c:
            c.send_raw(T.build_request(op, name, "octet", opts))
            got = c.recv(2.0)
            check(got is not None and got[0] is not None and got[0].op == T.OACK,
                  "%s: want OACK, got %r" % (T.OPNAMES[op], got))
            c.send_raw(T.build_error(8, "User aborted the transfer"), got[1])
            later = c.collect(1.6)
            check(not later, "%s: after ERROR 8 the gateway still sent %r"
                  % (T.OPNAMES[op], [p or raw[:20] for p, a, raw in later]))
    check(not os.path.exists(root_file("up/e8")), "up/e8 exists after the WRQ was refused")
    leftovers = [n for n in os.listdir(root_file("up")) if n != "existing"]
    check(not leftovers, "files left in up/: %r" % leftovers)
    with client() as c:
        r = c.get("f1")
    same(r.data, read_root("f1"), "get after the aborted sessions")


def t_garbage():
    """Malformed datagrams to the request port and garbage to a session's port
    from other sockets do not disturb a transfer."""
    want = read_root("f50k")
    replies = {"listener": [], "session": [], "error": []}
    socks = []

    def mk():
        s = socket.socket(T.family_of(CTX.host), socket.SOCK_DGRAM)
        s.bind((CTX.host, 0))
        socks.append(s)
        return s

    g_listen, g_session, g_error = mk(), mk(), mk()
    junk = [b"", b"\x00", b"\x00\x03\x00\x01abc", b"\x00\x04\x00\x01",
            b"\x00\x06blksize\x00512\x00", b"\x00\x01f50k", b"\x00\x01f50k\x00octet",
            b"\x00\x02up/x\x00", b"\x00\x63junk\x00", b"\xff\xff", b"\x00\x01\x00\x00",
            os.urandom(600), b"\x00\x01" + b"A" * 1000 + b"\x00octet\x00"]

    def hook(c, res, block):
        if block == 10:
            for j in junk:
                g_listen.sendto(j, (CTX.host, CTX.port))
            g_error.sendto(T.build_error(0, "not a request"), (CTX.host, CTX.port))
            for j in (b"", b"\x00", os.urandom(700), b"\x00\x03\x00\x0bxyz",
                      b"\x00\x04\x00\x0a", b"\x00\x05", b"\x00\x09abc"):
                g_session.sendto(j, res.server)
    with client() as c:
        r = c.get("f50k", hook=hook)
    same(r.data, want, "transfer with garbage around it")
    time.sleep(0.3)
    for s, key in zip(socks, ("listener", "session", "error")):
        s.setblocking(False)
        while True:
            try:
                dgram, _ = s.recvfrom(70000)
            except BlockingIOError:
                break
            try:
                replies[key].append(T.parse(dgram))
            except T.Malformed:
                replies[key].append(dgram[:20])
        s.close()
    bad = [p for p in replies["listener"] + replies["session"]
           if not (isinstance(p, T.Packet) and p.op == T.ERROR)]
    check(not bad, "garbage was answered with non-ERROR packets: %r" % bad[:5])
    check(not replies["error"], "an ERROR sent to the request port was answered: %r"
          % replies["error"])
    with client() as c:
        r = c.get("f1")
    same(r.data, read_root("f1"), "get after the garbage")


def t_modes():
    """mail and unknown modes: ERROR 4; mode names are case-insensitive
    (docs/protocol.md, Transfer modes)."""
    for op, name, mode in ((T.RRQ, "f1", "mail"), (T.WRQ, "up/mail", "mail"),
                           (T.RRQ, "f1", "binary"), (T.RRQ, "f1", ""),
                           (T.WRQ, "up/bin", "binary")):
        p = probe(op, name, mode)
        check(p.op == T.ERROR and p.code == 4, "%s %s mode %r: got %r, want ERROR 4"
              % (T.OPNAMES[op], name, mode, p))
    for mode in ("OCTET", "NetAscii", "Octet"):
        p = probe(T.RRQ, "f1", mode)
        check(p.op == T.DATA and p.block == 1, "RRQ mode %r: got %r, want DATA 1" % (mode, p))
    check(not os.path.exists(root_file("up/mail")), "mail-mode WRQ created up/mail")


def t_traversal():
    """Paths that climb out of the root: ERROR 2, nothing read or written."""
    for name in ("../etc/passwd", "/../etc/passwd", "a/../../etc/passwd",
                 "..\\..\\etc\\passwd", "up/../../etc/passwd", "..", "f1/..",
                 "rw/../f1", "./../f1", "....//../f1"):
        p = probe(T.RRQ, name)
        check(p.op == T.ERROR and p.code == 2, "RRQ %r: got %r, want ERROR 2" % (name, p))
    for name in ("../escape", "rw/../../escape", "up/../../escape", "rw/..\\..\\escape"):
        p = probe(T.WRQ, name)
        check(p.op == T.ERROR and p.code == 2, "WRQ %r: got %r, want ERROR 2" % (name, p))
    parent = os.path.dirname(os.path.abspath(CTX.root))
    for leftover in (os.path.join(parent, "escape"), os.path.join(os.path.dirname(parent), "escape")):
        check(not os.path.exists(leftover), "WRQ created %s outside the root" % leftover)
    # absolute paths are taken relative to the root: /etc/passwd is not served
    for name in ("/etc/passwd", "//etc/passwd", "\\etc\\passwd"):
        p = probe(T.RRQ, name)
        check(p.op == T.ERROR and p.code == 1, "RRQ %r: got %r, want ERROR 1 (root-relative)"
              % (name, p))
    for name in ("f\x01", "up/\x7fx", "f\x1b[0m"):
        p = probe(T.RRQ, name)
        check(p.op == T.ERROR and p.code == 2, "RRQ %r: got %r, want ERROR 2" % (name, p))


def t_missing():
    for name in ("nope", "nodir/nope", "up/nope", "rw/nope"):
        p = probe(T.RRQ, name)
        check(p.op == T.ERROR and p.code == 1, "RRQ %r: got %r, want ERROR 1" % (name, p))
    # a leading slash is stripped (path.h), so /f1 is the file f1
    with client() as c:
        r = c.get("/f1")
    same(r.data, read_root("f1"), "RRQ /f1")


def t_readonly():
    """WRQ on a route without write: ERROR 2, file untouched."""
    before = read_root("f1")
    for name, opts in (("f1", None), ("newfile", None), ("f1", [("tsize", "1")])):
        p = probe(T.WRQ, name, options=opts)
        check(p.op == T.ERROR and p.code == 2, "WRQ %r %r: got %r, want ERROR 2" % (name, opts, p))
    check(read_root("f1") == before, "f1 changed")
    check(not os.path.exists(root_file("newfile")), "newfile was created")


def t_max_size():
    """up/ has max_size = 1M: larger uploads get ERROR 3 and leave nothing."""
    mib = 1 << 20
    for size in (2 * mib, mib + 1, 1 << 40):
        p = probe(T.WRQ, "up/big", options=[("tsize", str(size))])
        check(p.op == T.ERROR and p.code == 3, "WRQ tsize=%d: got %r, want ERROR 3" % (size, p))
    data = os.urandom(mib)
    with client() as c:
        r = c.put("up/exact", data, options=[("tsize", str(mib)), ("blksize", "1468")])
    same(read_root("up/exact"), data, "1 MiB upload (exactly max_size, with tsize)")
    with client() as c:
        r = c.put("up/exact2", data)
    same(read_root("up/exact2"), data, "1 MiB upload (exactly max_size, no tsize)")
    acked = []

    def note(c, res, block):
        acked.append(block)
    for name, opts, size in (("up/cross", None, mib + 1),
                             ("up/cross2", [("blksize", "1468")], mib + mib // 2)):
        acked.clear()
        with client() as c:
            e = expect_error(lambda: c.put(name, os.urandom(size), options=opts,
                                           hook=note), 3, "upload of %d bytes without tsize" % size)
        bs = 1468 if opts else 512
        last_ok = mib // bs       # blocks that fit entirely under the cap
        check(not acked or acked[-1] <= last_ok + 1,
              "%s: the gateway ACKed block %d, past the cap (block %d crosses it)"
              % (name, acked[-1], last_ok + 1))
        time.sleep(0.3)
        check(not os.path.exists(root_file(name)), "%s exists after ERROR 3 (%s)" % (name, e.msg))
    leftovers = sorted(set(os.listdir(root_file("up"))) - {"existing", "exact", "exact2"})
    check(not leftovers, "files left in up/: %r" % leftovers)


def t_exists():
    """write=create: existing file -> ERROR 6; write=overwrite replaces."""
    before = read_root("up/existing")
    for opts in (None, [("tsize", "10")]):
        p = probe(T.WRQ, "up/existing", options=opts)
        check(p.op == T.ERROR and p.code == 6, "WRQ up/existing %r: got %r, want ERROR 6" % (opts, p))
    check(read_root("up/existing") == before, "up/existing changed")
    data = os.urandom(3000)
    with client() as c:
        c.put("up/new", data)
    same(read_root("up/new"), data, "created up/new")
    with client() as c:
        expect_error(lambda: c.put("up/new", b"other"), 6, "second WRQ up/new")
    same(read_root("up/new"), data, "up/new after refused second write")
    with client() as c:
        c.put("rw/existing", data)
    same(read_root("rw/existing"), data, "overwritten rw/existing")
    short = b"short"
    with client() as c:
        c.put("rw/existing", short)
    same(read_root("rw/existing"), short, "rw/existing overwritten by a shorter file")


def netascii_text():
    # wire offsets: CR LF split across block 1/2, a bare CR's NUL starting block 3
    return (b"a" * 511 + b"\n" + b"b" * 510 + b"\r" + b"c" * 100 + b"\r\n"
            + b"\n" * 300 + b"\r" * 300 + b"\x00nul\x00" + b"end")


def t_netascii_wire():
    """netascii on the wire: LF <-> CR LF, CR <-> CR NUL, across block edges
    (docs/protocol.md, Netascii)."""
    text = read_root("text2.txt")
    check(text == netascii_text(), "fixture text2.txt is not what run.sh should write")
    wire = T.to_netascii(text)
    check(wire[511:513] == b"\r\n" and wire[1023:1025] == b"\r\0", "fixture layout")
    with client() as c:
        r = c.get("text2.txt", mode="netascii")
    if r.data != wire:
        i = next((k for k in range(min(len(r.data), len(wire))) if r.data[k] != wire[k]),
                 min(len(r.data), len(wire)))
        raise Fail("netascii RRQ: %d bytes on the wire, want %d; first difference at %d: "
                   "got %r want %r" % (len(r.data), len(wire), i, r.data[i:i + 8], wire[i:i + 8]))
    with client() as c:
        c.put("rw/na.txt", wire, mode="netascii")
    same(read_root("rw/na.txt"), text, "netascii WRQ stored")
    with client() as c:
        r = c.get("rw/na.txt", mode="octet")
    same(r.data, text, "octet RRQ of the netascii upload")


def t_ipv6():
    want = read_root("f5M")
    with client() as c:
        r = c.get("f5M", options=[("blksize", "1448"), ("tsize", "0")])
    check(r.oack and r.oack.opts() == {"blksize": "1448", "tsize": str(len(want))},
          "OACK %r" % (r.oack,))
    check(r.server[0] == "::1", "answered from %r" % (r.server,))
    same(r.data, want, "get f5M over ::1")
    data = os.urandom(100000)
    with client() as c:
        c.put("rw/v6", data, options=[("blksize", "1448"), ("windowsize", "8")])
    same(read_root("rw/v6"), data, "put over ::1")


TESTS = {n[2:]: f for n, f in globals().items() if n.startswith("t_")}


def main():
    global CTX
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=sorted(TESTS))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--peer", action="store_true")
    CTX = ap.parse_args()
    try:
        TESTS[CTX.name]()
    except Fail as e:
        print(e)
        return 1
    except Skip as e:
        print(e)
        return 77
    except (T.TftpError, T.Timeout, T.ProtocolViolation) as e:
        print("%s: %s" % (type(e).__name__, e))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
