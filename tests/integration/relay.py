#!/usr/bin/env python3
"""relay - a lossy UDP relay for TFTP tests (stdlib only).

Clients send requests to the relay's listen port; the relay forwards them to
the target (the gateway's request port) from one upstream socket per client.
Every server TID that answers gets its own downstream socket, so the client
sees a distinct server TID just as it would without the relay (a port-
preserving NAT). In both directions a seeded fraction of datagrams is dropped,
duplicated, or delayed (so later ones overtake it: reordering).

  relay.py --target 127.0.0.1:6969 [--listen 127.0.0.1:0] [--drop 0.1]
           [--dup 0.05] [--reorder 0.05] [--seed 1] [--stats FILE] [--log]

Prints "PORT n" on stdout once listening. Stats (JSON) go to --stats every
half second and on SIGTERM/SIGINT.
"""

import argparse
import heapq
import json
import random
import select
import signal
import socket
import sys
import time


def hostport(s):
    host, _, port = s.rpartition(":")
    host = host.strip("[]")
    return host, int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Relay:
    def __init__(self, listen, target, drop=0.1, dup=0.05, reorder=0.05,
                 seed=1, log=False, delay_range=(0.005, 0.030)):
        self.target = target
        self.rng = random.Random(seed)
        self.drop, self.dup, self.reorder = drop, dup, reorder
        self.delay_range = delay_range
        self.log = log
        self.listen = socket.socket(family_of(listen[0]), socket.SOCK_DGRAM)
        self.listen.bind(listen)
        self.port = self.listen.getsockname()[1]
        self.sessions = {}   # client addr -> {"up": sock, "down": {server addr: sock}, "seen": t}
        self.owner = {}      # sock -> ("up", client) | ("down", client, server addr)
        self.queue = []      # (due, seq, sock, dgram, addr)
        self.seq = 0
        self.stats = {d: {"in": 0, "sent": 0, "dropped": 0, "duplicated": 0,
                          "delayed": 0} for d in ("c2s", "s2c")}
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

    def _emit(self, direction, sock, dgram, addr):
        st = self.stats[direction]
        st["in"] += 1
        r = self.rng.random()
        now = time.monotonic()
        if r < self.drop:
            st["dropped"] += 1
            if self.log:
                sys.stderr.write("drop %s %d bytes\n" % (direction, len(dgram)))
            return
        r -= self.drop
        if r < self.dup:
            st["duplicated"] += 1
            self._later(now, sock, dgram, addr)
            self._later(now + self.rng.uniform(0, 0.005), sock, dgram, addr)
            return
        r -= self.dup
        if r < self.reorder:
            st["delayed"] += 1
            self._later(now + self.rng.uniform(*self.delay_range), sock, dgram, addr)
            return
        self._send(sock, dgram, addr, direction)

    def _later(self, due, sock, dgram, addr):
        self.seq += 1
        heapq.heappush(self.queue, (due, self.seq, sock, dgram, addr))

    def _send(self, sock, dgram, addr, direction=None):
        try:
            sock.sendto(dgram, addr)
        except OSError:
            return
        if direction:
            self.stats[direction]["sent"] += 1

    def _expire(self):
        now = time.monotonic()
        for client, s in list(self.sessions.items()):
            if now - s["seen"] > 60:
                for sock in [s["up"]] + list(s["down"].values()):
                    self.owner.pop(sock, None)
                    sock.close()
                del self.sessions[client]

    def run(self, stats_file=None):
        last_stats = 0.0
        while not self.stop:
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, sock, dgram, addr = heapq.heappop(self.queue)
                if sock.fileno() >= 0:
                    self._send(sock, dgram, addr)
            wait = 0.5
            if self.queue:
                wait = max(0.0, min(wait, self.queue[0][0] - now))
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
        import os
        os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--target", required=True)
    ap.add_argument("--drop", type=float, default=0.10)
    ap.add_argument("--dup", type=float, default=0.05)
    ap.add_argument("--reorder", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stats")
    ap.add_argument("--log", action="store_true")
    a = ap.parse_args(argv)
    r = Relay(hostport(a.listen), hostport(a.target), a.drop, a.dup, a.reorder,
              a.seed, a.log)

    def stop(*_):
        r.stop = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("PORT %d" % r.port, flush=True)
    r.run(a.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
