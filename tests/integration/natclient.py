#!/usr/bin/env python3
"""natclient - single-port mode checks for tftpgw (tests/integration/single_port.sh).

Every check drives real transfers with tftpraw's Client and compares bytes
(what was received, what the gateway stored under --root), never just exit
codes. Subcommands:

  many HOST PORT --root DIR --count N [--bind ADDR]... [--pair-port P] [--single]
      N concurrent transfers (gets and puts mixed), each from its own UDP
      port, started together; plus two puts of one name from two ports.
      --bind cycles the clients over local addresses; --pair-port makes the
      first client on each of the first two addresses use source port P (a
      NAT must then tell them apart); --single asserts that every reply came
      from HOST:PORT.
  supersede HOST PORT --root DIR
      a new request from a port with a running session ends that session.
  dup HOST PORT --root DIR
      a duplicate RRQ or WRQ during the transfer changes nothing.
  foreign HOST PORT --root DIR
      DATA/ACK from a port without a session get ERROR 5 from HOST:PORT.
  probe HOST PORT --root DIR [--bind ADDR] [--timeout S] [--retries N]
      a get (f200k) and a put at once; prints "get: ok|timeout ..." and
      "put: ..." (for a path where transfers are expected to fail).

Exit 0 when every check passed; 1 with one line per failure.
"""

import argparse
import hashlib
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tftpraw as T  # noqa: E402

FAILS = []


def check(cond, msg):
    if not cond:
        FAILS.append(msg)
    return cond


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def same(got, want, what):
    return check(got == want, "%s: sha256 %s (%d bytes), want %s (%d bytes)"
                 % (what, sha(got), len(got), sha(want), len(want)))


def read(root, name):
    try:
        with open(os.path.join(root, name), "rb") as f:
            return f.read()
    except OSError:
        return None


class BoundClient(T.Client):
    """A tftpraw Client on a chosen local address and, optionally, port."""

    def __init__(self, host, port, bind=None, bport=0, timeout=1.0, retries=5):
        super().__init__(host, port, timeout, retries, bind_host=bind)
        if bport:
            self.sock.close()
            self.sock = socket.socket(T.family_of(host), socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind((bind or host, bport))


# ---------------------------------------------------------------- many

GETS = [
    ("f200k", [("blksize", "1468"), ("windowsize", "8")]),
    ("f50k", None),
    ("f4404", [("blksize", "1024"), ("tsize", "0")]),
    ("f200k", [("windowsize", "4")]),
    ("f2M", [("blksize", "1468"), ("windowsize", "16")]),
    ("f50k", [("blksize", "8192")]),
]
PUT_OPTS = [None, [("blksize", "1468"), ("windowsize", "8")], [("windowsize", "4")],
            [("blksize", "1024"), ("tsize", None)]]


def cmd_many(a):
    server = (a.host, a.port)
    rnd = random.Random(a.seed)
    jobs = []
    for i in range(a.count):
        if i % 2 == 0:
            name, opts = GETS[(i // 2) % len(GETS)]
            jobs.append({"op": "get", "name": name, "opts": opts})
        else:
            size = rnd.randrange(1, 250_000) if i != 1 else 1 << 20
            opts = PUT_OPTS[(i // 2) % len(PUT_OPTS)]
            if opts and ("tsize", None) in opts:
                opts = [(k, str(size) if k == "tsize" else v) for k, v in opts]
            jobs.append({"op": "put", "name": "rw/%s-%d" % (a.tag, i), "opts": opts,
                         "data": rnd.randbytes(size)})
    # two uploads of one name from two ports: one of them wins, whole
    same_name = "rw/%s-same" % a.tag
    for k in range(2):
        jobs.append({"op": "put", "name": same_name, "opts": [("blksize", "1468")],
                     "data": rnd.randbytes(300_000 + k)})
    binds = a.bind or [None]
    for i, j in enumerate(jobs):
        j["bind"] = binds[i % len(binds)]
        j["bport"] = a.pair_port if a.pair_port and i < min(2, len(binds)) else 0

    clients = []
    for j in jobs:
        try:
            clients.append(BoundClient(a.host, a.port, j["bind"], j["bport"], a.timeout, a.retries))
        except OSError as e:
            print("FAIL cannot bind a client socket %s:%s: %s" % (j["bind"], j["bport"], e))
            return 1
    locals_ = [c.addr for c in clients]
    check(len(set(locals_)) == len(clients), "client sockets are not all distinct: %r" % locals_)
    barrier = threading.Barrier(len(jobs))

    def run(j, c):
        try:
            barrier.wait(10)
            if j["op"] == "get":
                j["res"] = c.get(j["name"], options=j["opts"])
            else:
                j["res"] = c.put(j["name"], j["data"], options=j["opts"])
        except Exception as e:   # reported below, per job
            j["err"] = "%s: %s" % (type(e).__name__, e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(j, c), daemon=True) for j, c in zip(jobs, clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, 80 - (time.monotonic() - t0)))
    elapsed = time.monotonic() - t0
    for c in clients:
        c.close()

    wants = {}
    nbytes = rexmit = 0
    for i, (j, loc) in enumerate(zip(jobs, locals_)):
        what = "%s %s from %s:%d" % (j["op"], j["name"], loc[0], loc[1])
        if "err" in j or "res" not in j:
            check(False, "%s: %s" % (what, j.get("err", "did not finish")))
            continue
        r = j["res"]
        nbytes += len(r.data)
        rexmit += r.retransmits
        if a.single:
            check(r.tids == {server} and not r.foreign,
                  "%s: replies from %r (foreign %r), want only %s:%d"
                  % (what, sorted(r.tids), r.foreign[:2], a.host, a.port))
        if j["op"] == "get":
            if j["name"] not in wants:
                wants[j["name"]] = read(a.root, j["name"])
            same(r.data, wants[j["name"]], what)
        elif j["name"] != same_name:
            stored = read(a.root, j["name"])
            same(stored or b"", j["data"], what + " (stored)")
    stored = read(a.root, same_name) or b""
    check(stored in (jobs[-1]["data"], jobs[-2]["data"]),
          "two puts of %s from two ports: stored sha256 %s (%d bytes) is neither upload"
          % (same_name, sha(stored), len(stored)))
    ports = {}
    for host, port in locals_:
        ports.setdefault(host, set()).add(port)
    for f in FAILS:
        print("FAIL " + f)
    print("%s %d transfers (%d gets, %d puts) from %s in %.2f s, %d bytes, %d client retransmissions"
          % ("ok" if not FAILS else "failed", len(jobs), sum(j["op"] == "get" for j in jobs),
             sum(j["op"] == "put" for j in jobs),
             ", ".join("%s (%d ports)" % (h, len(p)) for h, p in sorted(ports.items())),
             elapsed, nbytes, rexmit))
    return 1 if FAILS else 0


# ---------------------------------------------------------------- supersede

def expect(c, server, op, block=None, timeout=2.0):
    """The next datagram: a Packet of op (and block) from server, else a failure."""
    got = c.recv(timeout)
    if got is None:
        raise T.Timeout("no %s %s within %.1f s" % (T.OPNAMES[op], block, timeout))
    pkt, addr, raw = got
    if pkt is None or pkt.op != op or (block is not None and pkt.block != block) or addr != server:
        raise T.ProtocolViolation("want %s %s from %s, got %r from %s"
                                  % (T.OPNAMES[op], block, server, pkt or raw[:20], addr))
    return pkt


def lockstep_after_oack(c, server, blksize):
    """Finish an RRQ whose OACK arrived: ACK 0, then DATA/ACK one by one."""
    out, last, tries = [], 0, 0
    c.send_raw(T.build_ack(0), server)
    while True:
        got = c.recv(c.timeout)
        if got is None:
            tries += 1
            if tries > c.retries:
                raise T.Timeout("no DATA after block %d" % last)
            c.send_raw(T.build_ack(last), server)
            continue
        pkt, addr, raw = got
        if addr != server or pkt is None or pkt.op == T.ERROR:
            raise T.ProtocolViolation("during the new RRQ: %r from %s" % (pkt or raw[:20], addr))
        if pkt.op != T.DATA or pkt.block != (last + 1) & 0xFFFF:
            continue
        last += 1
        tries = 0
        out.append(pkt.data)
        c.send_raw(T.build_ack(last), server)
        if len(pkt.data) < blksize:
            return b"".join(out)


def cmd_supersede(a):
    server = (a.host, a.port)
    f50k, f200k = read(a.root, "f50k"), read(a.root, "f200k")

    # 1. RRQ f5M under way (DATA 3 not ACKed), then an RRQ for f50k from the
    #    same port: the new one is served, the old one never sends again
    #    (it would resend DATA 3 after its 1 s timeout).
    with BoundClient(a.host, a.port) as c:
        c.send_raw(T.build_rrq("f5M"))
        for n in (1, 2, 3):
            expect(c, server, T.DATA, n)
            if n < 3:
                c.send_raw(T.build_ack(n), server)
        r = c.get("f50k", options=[("blksize", "1024")])
        same(r.data, f50k, "RRQ f50k superseding RRQ f5M")
        check(r.oack is not None and r.tids == {server} and not r.foreign,
              "superseding RRQ: oack %r, replies from %r" % (r.oack, sorted(r.tids)))
        late = c.collect(1.6)
        check(not late, "the superseded RRQ f5M still sent %r" % [p or raw[:20] for p, _, raw in late][:3])
        print("rrq-mid port=%d" % c.addr[1])

    # 2. Two RRQs back to back: the first is superseded before (or just
    #    after) its first reply; only stray DATA of the first may arrive.
    with BoundClient(a.host, a.port) as c:
        c.send_raw(T.build_rrq("f5M"))
        c.send_raw(T.build_rrq("f200k", options=[("blksize", "1468")]))
        stray = 0
        while True:
            got = c.recv(2.0)
            if not check(got is not None, "back-to-back RRQs: no OACK for the second"):
                break
            pkt, addr, raw = got
            if pkt is not None and pkt.op == T.DATA and pkt.block == 1 and stray < 3:
                stray += 1
                continue
            if check(pkt is not None and pkt.op == T.OACK and addr == server,
                     "back-to-back RRQs: want OACK, got %r from %s" % (pkt or raw[:20], addr)):
                data = lockstep_after_oack(c, server, 1468)
                same(data, f200k, "RRQ f200k right after RRQ f5M")
            break
        late = c.collect(1.3)
        check(not late, "after back-to-back RRQs the gateway still sent %r"
              % [p or raw[:20] for p, _, raw in late][:3])
        print("rrq-burst port=%d stray=%d" % (c.addr[1], stray))

    # 3. WRQ rw/sup-old under way (2 blocks ACKed), then a WRQ rw/sup-new from
    #    the same port: the new upload is stored, the old one leaves nothing.
    payload = random.Random(7).randbytes(100_000)
    with BoundClient(a.host, a.port) as c:
        c.send_raw(T.build_wrq("rw/sup-old"))
        expect(c, server, T.ACK, 0)
        for n in (1, 2):
            c.send_raw(T.build_data(n, b"o" * 512), server)
            expect(c, server, T.ACK, n)
        r = c.put("rw/sup-new", payload, options=[("blksize", "1468"), ("windowsize", "4")])
        same(read(a.root, "rw/sup-new") or b"", payload, "WRQ rw/sup-new superseding WRQ rw/sup-old")
        check(r.tids == {server}, "superseding WRQ: replies from %r" % sorted(r.tids))
        print("wrq-mid port=%d" % c.addr[1])
    time.sleep(0.3)
    check(read(a.root, "rw/sup-old") is None, "superseded upload rw/sup-old was stored")

    # 4. One port, one upload finished (the gateway dallies), then at once a
    #    get and another upload from the same port (tftp-hpa's interactive
    #    mode reuses its socket this way).
    p1, p2 = random.Random(8).randbytes(30_000), random.Random(9).randbytes(20_000)
    with BoundClient(a.host, a.port, timeout=1.0, retries=3) as c:
        c.put("rw/seq-1", p1, options=[("blksize", "1468")])
        r = c.get("f50k", options=[("blksize", "1468")])
        same(r.data, f50k, "get right after an upload from the same port")
        r2 = c.put("rw/seq-2", p2)
        same(read(a.root, "rw/seq-1") or b"", p1, "rw/seq-1 (stored)")
        same(read(a.root, "rw/seq-2") or b"", p2, "rw/seq-2 after a get from the same port (stored)")
        t0 = time.monotonic()
        r3 = c.put("rw/seq-2", p1)
        same(read(a.root, "rw/seq-2") or b"", p1, "rw/seq-2 uploaded again from the same port")
        print("seq port=%d get_rexmit=%d put_rexmit=%d same_name_again=%.2fs rexmit=%d"
              % (c.addr[1], r.retransmits, r2.retransmits, time.monotonic() - t0, r3.retransmits))
    for f in FAILS:
        print("FAIL " + f)
    return 1 if FAILS else 0


# ---------------------------------------------------------------- dup

def cmd_dup(a):
    server = (a.host, a.port)
    want = read(a.root, "f200k")
    opts = [("blksize", "1024"), ("windowsize", "8")]
    sent = []

    def again_rrq(c, res, block):
        if block in (40, 120):
            c.send_raw(T.build_rrq("f200k", options=opts))
            sent.append(block)

    with BoundClient(a.host, a.port) as c:
        r = c.get("f200k", options=opts, hook=again_rrq)
        same(r.data, want, "get f200k with its RRQ repeated at blocks 40 and 120")
        check(r.tids == {server} and not r.foreign, "duplicate RRQ: replies from %r, foreign %r"
              % (sorted(r.tids), r.foreign[:2]))
        check(sent == [40, 120], "hook ran at %r" % sent)
        check(not c.collect(0.5), "packets after the get with duplicate RRQs")
        print("rrq port=%d retransmits=%d" % (c.addr[1], r.retransmits))

    payload = random.Random(3).randbytes(150_000)
    wopts = [("blksize", "1024"), ("windowsize", "4")]
    sent.clear()

    def again_wrq(c, res, block):
        if block in (20, 100):
            c.send_raw(T.build_wrq("rw/dup", options=wopts))
            sent.append(block)

    with BoundClient(a.host, a.port) as c:
        r = c.put("rw/dup", payload, options=wopts, hook=again_wrq)
        same(read(a.root, "rw/dup") or b"", payload, "put rw/dup with its WRQ repeated (stored)")
        check(r.tids == {server} and not r.foreign, "duplicate WRQ: replies from %r" % sorted(r.tids))
        check(sent == [20, 100], "hook ran at %r" % sent)
        print("wrq port=%d retransmits=%d stale_acks=%d" % (c.addr[1], r.retransmits, r.stale_acks))
    for f in FAILS:
        print("FAIL " + f)
    return 1 if FAILS else 0


# ---------------------------------------------------------------- foreign

def ask(server, dgram, bind, wait=1.0):
    """Send dgram from a fresh port; the answers (waiting up to wait seconds for the first)."""
    with socket.socket(T.family_of(server[0]), socket.SOCK_DGRAM) as s:
        s.bind((bind, 0))
        s.sendto(dgram, server)
        s.settimeout(wait)
        out = []
        while True:
            try:
                d, addr = s.recvfrom(70000)
            except socket.timeout:
                return out
            try:
                out.append((T.parse(d), addr[:2]))
            except T.Malformed:
                out.append((d[:20], addr[:2]))
            s.settimeout(0.15)   # then only a short look for a second answer


def is_err5(answers, server):
    return (len(answers) == 1 and isinstance(answers[0][0], T.Packet) and answers[0][0].op == T.ERROR
            and answers[0][0].code == 5 and answers[0][1] == server)


def cmd_foreign(a):
    server = (a.host, a.port)
    for what, dgram in (("ACK 1", T.build_ack(1)), ("DATA 1", T.build_data(1, b"x" * 512)),
                        ("ACK 0", T.build_ack(0)), ("OACK", T.build_oack([("blksize", "512")]))):
        ans = ask(server, dgram, a.host, 0.5)
        check(is_err5(ans, server), "%s from a port without a session: got %r, want one ERROR 5 from %s:%d"
              % (what, ans, a.host, a.port))
    ans = ask(server, T.build_error(0, "nobody asked"), a.host, 0.4)
    check(not ans, "ERROR from a port without a session was answered: %r" % ans)

    want = read(a.root, "f200k")
    seen = []

    def intrude(dgram):
        def hook(c, res, block):
            if block == 10:
                seen.append(ask(server, dgram(block), a.host, 1.0))
        return hook

    with BoundClient(a.host, a.port) as c:
        r = c.get("f200k", options=[("blksize", "1024")], hook=intrude(lambda b: T.build_ack(b)))
        same(r.data, want, "get f200k while a foreign port sent ACK 10")
        check(r.tids == {server} and not r.foreign, "get: replies from %r, foreign %r"
              % (sorted(r.tids), r.foreign[:2]))
    check(len(seen) == 1 and is_err5(seen[0], server), "foreign ACK during a get: got %r, want ERROR 5" % seen)

    payload = random.Random(5).randbytes(80_000)
    seen.clear()
    with BoundClient(a.host, a.port) as c:
        c.put("rw/foreign-sp", payload, options=[("blksize", "1024")],
              hook=intrude(lambda b: T.build_data(b + 1, b"X" * 1024)))
        same(read(a.root, "rw/foreign-sp") or b"", payload, "put while a foreign port sent DATA (stored)")
    check(len(seen) == 1 and is_err5(seen[0], server), "foreign DATA during a put: got %r, want ERROR 5" % seen)
    for f in FAILS:
        print("FAIL " + f)
    return 1 if FAILS else 0


# ---------------------------------------------------------------- probe

def cmd_probe(a):
    """A get and a put at once, short timeouts; prints one outcome line each."""
    out = {}

    def run(op):
        try:
            with BoundClient(a.host, a.port, (a.bind or [None])[0], 0, a.timeout, a.retries) as c:
                if op == "get":
                    r = c.get("f200k", options=[("blksize", "1468")])
                else:
                    r = c.put("rw/%s-probe" % a.tag, b"p" * 50_000)
                out[op] = "ok %d bytes" % len(r.data)
        except T.Timeout as e:
            out[op] = "timeout (%s)" % e
        except Exception as e:
            out[op] = "%s: %s" % (type(e).__name__, e)

    threads = [threading.Thread(target=run, args=(op,), daemon=True) for op in ("get", "put")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for op in ("get", "put"):
        print("%s: %s" % (op, out.get(op, "did not finish")))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=("many", "supersede", "dup", "foreign", "probe"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--root", required=True)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--bind", action="append")
    ap.add_argument("--pair-port", type=int, default=0)
    ap.add_argument("--single", action="store_true")
    ap.add_argument("--tag", default="mp")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--retries", type=int, default=5)
    a = ap.parse_args()
    try:
        return {"many": cmd_many, "supersede": cmd_supersede, "dup": cmd_dup,
                "foreign": cmd_foreign, "probe": cmd_probe}[a.cmd](a)
    except (T.TftpError, T.Timeout, T.ProtocolViolation) as e:
        for f in FAILS:
            print("FAIL " + f)
        print("FAIL %s: %s" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
