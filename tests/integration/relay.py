#!/usr/bin/env python3
"""relay - a faulty UDP relay for TFTP tests (stdlib only).

Clients send requests to the relay's listen port; the relay forwards them to
the target (the gateway's request port) from one upstream socket per client.
Every server TID that answers gets its own downstream socket, so the client
sees a distinct server TID just as it would without the relay (a port-
preserving NAT), and the relay follows each transfer's TID on its own.

In both directions (or one, --only), each datagram meets at most one fault,
chosen with the given probabilities:

  drop      never delivered
  dup       delivered twice (the copy up to 5 ms later)
  reorder   held back and released right after the next datagram of the same
            flow (same socket and peer), so the two swap places; released
            anyway after --hold-max seconds when no next datagram comes
  delay     delivered after a uniform delay from --delay-ms LO:HI (later
            datagrams overtake it)

Decisions come from one random generator per direction, seeded from --seed,
so a run makes the same choices for the same sequence of datagrams.

  relay.py --target 127.0.0.1:6969 [--listen 127.0.0.1:0] [--drop 0.1]
           [--dup 0.05] [--reorder 0.05] [--delay 0] [--delay-ms 5:30]
           [--hold-max 0.5] [--only c2s|s2c] [--seed 1] [--lifetime 600]
           [--stats FILE] [--log]

Prints "PORT n" on stdout once listening. Stats (JSON, per direction: in,
sent, dropped, duplicated, reordered, delayed) go to --stats every half
second and at exit. Exits on SIGTERM/SIGINT or after --lifetime seconds.
"""

import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import sys
import time

DIRS = ("c2s", "s2c")


def hostport(s):
    host, _, port = s.rpartition(":")
    host = host.strip("[]")
    return host, int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Relay:
    def __init__(self, listen, target, drop=0.1, dup=0.05, reorder=0.05,
                 seed=1, log=False, delay=0.0, delay_range=(0.005, 0.030),
                 hold_max=0.5, only=None):
        self.target = target
        # one generator per direction: the ACK stream's choices do not shift
        # with the DATA stream's timing
        self.rng = {d: random.Random("relay/%d/%s" % (seed, d)) for d in DIRS}
        self.drop, self.dup, self.reorder, self.delay = drop, dup, reorder, delay
        self.delay_range = delay_range
        self.hold_max = hold_max
        self.only = only
        self.log = log
        self.listen = socket.socket(family_of(listen[0]), socket.SOCK_DGRAM)
        self.listen.bind(listen)
        self.port = self.listen.getsockname()[1]
        self.sessions = {}   # client addr -> {"up": sock, "down": {server addr: sock}, "seen": t}
        self.owner = {}      # sock -> ("up", client) | ("down", client, server addr)
        self.queue = []      # (due, seq, sock, dgram, addr)
        self.held = {}       # (sock, addr) -> (since, dgram, direction)
        self.seq = 0
        self.stats = {d: {"in": 0, "sent": 0, "dropped": 0, "duplicated": 0,
                          "reordered": 0, "delayed": 0} for d in DIRS}
        self.stop = False

    def _session(self, client):
        s = self.sessions.get(client)
        if s is None:
            up = socket.socket(family_of(self.target[0]), socket.SOCK_DGRAM)
            up.bind(("::" if up.family == socket.AF_INET6 else "0.0.0.0", 0))
            s = {"up": up, "down": {}, "seen": time.monotonic()}
            self.sessions[client] = s
            self.owner[up] = ("up", client)
        s["seen"] = time.monotonic()
        return s

    def _down(self, client, server):
        s = self.sessions[client]
        d = s["down"].get(server)
        if d is None:
            d = socket.socket(self.listen.family, socket.SOCK_DGRAM)
            d.bind((self.listen.getsockname()[0], 0))
            s["down"][server] = d
            self.owner[d] = ("down", client, server)
        return d

    def _note(self, what, direction, dgram):
        if self.log:
            op = int.from_bytes(dgram[:2], "big") if len(dgram) >= 2 else -1
            blk = int.from_bytes(dgram[2:4], "big") if len(dgram) >= 4 else -1
            sys.stderr.write("%.3f %s %s op=%d blk=%d len=%d\n"
                             % (time.monotonic(), what, direction, op, blk, len(dgram)))

    def _emit(self, direction, sock, dgram, addr):
        st = self.stats[direction]
        st["in"] += 1
        key = (sock, addr)
        prev = self.held.pop(key, None)
        fault = None
        if self.only in (None, direction):
            r = self.rng[direction].random()
            for name, p in (("drop", self.drop), ("dup", self.dup),
                            ("reorder", self.reorder), ("delay", self.delay)):
                if r < p:
                    fault = name
                    break
                r -= p
        now = time.monotonic()
        if fault == "reorder" and prev is None:
            st["reordered"] += 1
            self._note("hold", direction, dgram)
            self.held[key] = (now, dgram, direction)
        elif fault == "drop":
            st["dropped"] += 1
            self._note("drop", direction, dgram)
        elif fault == "dup":
            st["duplicated"] += 1
            self._note("dup", direction, dgram)
            self._send(sock, dgram, addr, direction)
            self._later(now + self.rng[direction].uniform(0, 0.005), sock, dgram, addr, direction)
        elif fault == "delay":
            st["delayed"] += 1
            self._note("delay", direction, dgram)
            self._later(now + self.rng[direction].uniform(*self.delay_range), sock, dgram, addr,
                        direction)
        else:
            # no fault, or a second hold while one is pending: just send
            self._send(sock, dgram, addr, direction)
        if prev is not None:
            # the held datagram goes out after its successor: swapped
            self._note("release", prev[2], prev[1])
            self._send(sock, prev[1], addr, prev[2])

    def _later(self, due, sock, dgram, addr, direction):
        self.seq += 1
        heapq.heappush(self.queue, (due, self.seq, sock, dgram, addr, direction))

    def _send(self, sock, dgram, addr, direction):
        if sock.fileno() < 0:
            return
        try:
            sock.sendto(dgram, addr)
        except OSError:
            return
        self.stats[direction]["sent"] += 1

    def _release_stale_holds(self, now):
        for key, (since, dgram, direction) in list(self.held.items()):
            if now - since >= self.hold_max:
                del self.held[key]
                self._note("release-late", direction, dgram)
                self._send(key[0], dgram, key[1], direction)

    def _next_due(self):
        due = [self.queue[0][0]] if self.queue else []
        due += [since + self.hold_max for since, _, _ in self.held.values()]
        return min(due) if due else None

    def _expire(self):
        now = time.monotonic()
        for client, s in list(self.sessions.items()):
            if now - s["seen"] > 60:
                for sock in [s["up"]] + list(s["down"].values()):
                    self.owner.pop(sock, None)
                    for key in [k for k in self.held if k[0] is sock]:
                        del self.held[key]
                    sock.close()
                del self.sessions[client]

    def run(self, stats_file=None, lifetime=600.0):
        last_stats = 0.0
        end = time.monotonic() + lifetime
        while not self.stop and time.monotonic() < end:
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, sock, dgram, addr, direction = heapq.heappop(self.queue)
                self._send(sock, dgram, addr, direction)
            self._release_stale_holds(now)
            wait = 0.5
            due = self._next_due()
            if due is not None:
                wait = max(0.0, min(wait, due - now))
            socks = [self.listen] + list(self.owner)
            try:
                ready, _, _ = select.select(socks, [], [], wait)
            except InterruptedError:
                continue
            for sock in ready:
                try:
                    dgram, addr = sock.recvfrom(70000)
                except OSError:
                    continue
                addr = addr[:2]
                if sock is self.listen:
                    s = self._session(addr)
                    self._emit("c2s", s["up"], dgram, self.target)
                    continue
                who = self.owner.get(sock)
                if who is None:
                    continue
                if who[0] == "up":
                    client = who[1]
                    d = self._down(client, addr)
                    self.sessions[client]["seen"] = time.monotonic()
                    self._emit("s2c", d, dgram, client)
                else:
                    _, client, server = who
                    if addr != client:
                        continue          # not our client: not relayed
                    s = self._session(client)
                    self._emit("c2s", s["up"], dgram, server)
            if stats_file and time.monotonic() - last_stats > 0.5:
                self.write_stats(stats_file)
                last_stats = time.monotonic()
            self._expire()
        if stats_file:
            self.write_stats(stats_file)

    def write_stats(self, path):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f)
        os.replace(tmp, path)


def prob(s):
    v = float(s)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("a probability is between 0 and 1: %s" % s)
    return v


def ms_range(s):
    lo, _, hi = s.partition(":")
    lo, hi = float(lo), float(hi or lo)
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError("want LO:HI milliseconds, 0 <= LO <= HI: %s" % s)
    return lo / 1000.0, hi / 1000.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--target", required=True)
    ap.add_argument("--drop", type=prob, default=0.10)
    ap.add_argument("--dup", type=prob, default=0.05)
    ap.add_argument("--reorder", type=prob, default=0.05)
    ap.add_argument("--delay", type=prob, default=0.0)
    ap.add_argument("--delay-ms", type=ms_range, default=(0.005, 0.030))
    ap.add_argument("--hold-max", type=float, default=0.5,
                    help="longest a reordered datagram waits for a successor (s)")
    ap.add_argument("--only", choices=DIRS, help="faults in this direction only")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lifetime", type=float, default=600.0,
                    help="exit after this many seconds whatever happens")
    ap.add_argument("--stats")
    ap.add_argument("--log", action="store_true")
    a = ap.parse_args(argv)
    if a.drop + a.dup + a.reorder + a.delay > 1.0:
        ap.error("drop + dup + reorder + delay exceed 1")
    r = Relay(hostport(a.listen), hostport(a.target), a.drop, a.dup, a.reorder,
              a.seed, a.log, a.delay, a.delay_ms, a.hold_max, a.only)

    def stop(*_):
        r.stop = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("PORT %d" % r.port, flush=True)
    r.run(a.stats, a.lifetime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
