#!/usr/bin/env python3
"""soak.py - many mixed TFTP transfers over a lossy path, then invariants.

Starts nginx (WebDAV PUT, loopback), tftpgw with a file route and two HTTP
routes, and a few lossy relays (tests/integration/relay.py, used as it is),
then runs a seeded plan of jobs until every job has ended:

  job      one client process: build/tftpload (COUNT transfers of one file
           with one option set, all in flight at once), for variety
           tests/integration/tftpraw.py (one transfer), or abortput.py (an
           upload abandoned halfway, by ERROR or by silence)
  backend  file (route f/, write = create) or http (h/ overwrite, hc/ create)
  op       get (RRQ of a source prepared in the backend's root) or put (WRQ)
  options  blksize none/512/1468/8192, windowsize none/1/8/32, tsize or not
  size     1 KiB .. 4 MiB, log-uniform, capped so that a transfer needs at
           most 256 windows (a lock-step transfer of 4 MiB in 512-byte blocks
           under 2 % loss would spend minutes in timeouts and prove nothing
           more than a shorter one)
  path     through one of the relays (drop/dup/reorder) or direct. relay.py
           waits in select(), which cannot watch a descriptor above 1023,
           and keeps two sockets per transfer for 60 s: a job goes to the
           relay with the fewest descriptors, or direct (counted as
           "spilled") when all have RELAY_FD_MAX

At most --inflight transfers run at once. Every get is verified byte for byte
(tftpload compares each block with the source at its offset and the final
length; tftpraw output is hashed); every put's stored object (file root or
nginx root) is hashed against what was sent. At the end the gateway must be
idle, hold the same descriptors as at the start, and exit 0 on SIGTERM.

Invariants (any failure -> exit 1):
  - every planned transfer attempted and completed; a failure is tolerated
    only with --allow-giveups and only as a loss give-up (client timeout)
  - 0 checksum mismatches (gets and stored uploads)
  - 0 uploads ACKed final but missing or different
  - 0 failed or abandoned uploads that left an object behind, 0 stray
    files, nginx's body temp directory empty, get sources unchanged
  - gateway: active sessions 0 after the run, descriptor set equal to the
    start (same count per kind), exit status 0 on SIGTERM, no crash
  - relays alive to the end (a dead relay voids the run)

--inject plants one fault of a kind the checks must catch (the run must
then fail): a self-check of the checks. Writes WORKDIR/report.json and
prints a summary (with --markdown, also a table). stdlib only.
"""

import argparse
import collections
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
INTEG = os.path.join(os.path.dirname(HERE), "integration")
PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

KIB, MIB = 1024, 1 << 20
BLKSIZES = [None, 512, 1468, 1468, 8192]     # None: option not sent (512)
WINDOWS = [None, 1, 8, 32]                   # None: option not sent (1)
MAX_WINDOWS = 256                            # windows per transfer, see above
RELAY_FD_MAX = 800                           # select() in relay.py stops at 1024


def log(msg):
    sys.stdout.write("soak: %s\n" % msg)
    sys.stdout.flush()


# ---------------------------------------------------------------- plan

class Job:
    def __init__(self, jid, r, a):
        self.id = jid
        self.backend = "file" if r.random() < 0.5 else "http"
        self.op = "get" if r.random() < 0.55 else "put"
        x = r.random()
        self.client = ("abort" if x < a.abort_share else
                       "tftpraw" if x < a.abort_share + a.tftpraw_share else "tftpload")
        self.blksize = r.choice(BLKSIZES)
        self.windowsize = r.choice(WINDOWS)
        if self.client == "abort":
            # an upload abandoned after block `after`, before its last block
            # was ever sent (so below the last block by a window and more)
            self.op = "put"
            self.windowsize = r.choice([None, 1, 8])
            self.after = r.randint(1, 8)
            self.how = r.choice(["error", "silent"])
        self.tsize = r.random() < 0.5
        eb, ew = self.blksize or 512, self.windowsize or 1
        cap = min(4 * MIB, eb * ew * MAX_WINDOWS)
        if self.client != "tftpload":
            cap = min(cap, 512 * KIB)            # a Python client: keep it brief
        x = r.random()
        if x < 0.04 and cap == 4 * MIB:
            size = 4 * MIB
        else:
            size = int(math.exp(r.uniform(math.log(KIB), math.log(cap))))
            if x < 0.12:
                # a multiple of the block size: the transfer ends with an empty block
                size = max(-(-KIB // eb), min(size, cap) // eb) * eb
        self.size = max(KIB, min(size, cap))
        if self.client == "abort":
            self.size = max(self.size, (self.after + ew + 3) * eb)
        self.count = 1 if self.client != "tftpload" else r.randint(1, a.max_job)
        self.relayed = r.random() < a.relay_share
        if self.backend == "file":
            self.prefix = "f"
        else:
            self.prefix = "h" if self.op == "get" or r.random() < 0.5 else "hc"
        self.remote = "%s/%s/%s%d" % (self.prefix, "src" if self.op == "get" else "up",
                                      "g" if self.op == "get" else "p", jid)
        self.local = None         # what the client sends or expects
        self.served = None        # a get's source in the backend's root
        self.sha = None
        # results
        self.via = None
        self.spilled = False      # relayed by plan, sent direct: relays full
        self.ok = 0
        self.abandoned = 0        # abort jobs: abandoned as planned
        self.failed = {}          # transfer index -> reason
        self.unattributed = 0     # failures tftpload did not name
        self.started = self.ended = None
        self.detail = ""

    def opts_text(self):
        parts = ["blksize=%s" % (self.blksize or "-"), "windowsize=%s" % (self.windowsize or "-"),
                 "tsize" if self.tsize else "no-tsize"]
        return " ".join(parts)

    def stored_paths(self, env):
        """(transfer index, stored path) of every put of this job."""
        base = env.file_root if self.backend == "file" else env.ngx_root
        rel = self.remote.split("/", 1)[1]
        return [(i, os.path.join(base, "%s.%d" % (rel, i))) for i in range(1, self.count + 1)]


def make_plan(a):
    r = random.Random("soak/%d" % a.seed)
    jobs, n, jid = [], 0, 0
    while n < a.count:
        jid += 1
        j = Job(jid, r, a)
        j.count = min(j.count, a.count - n)
        jobs.append(j)
        n += j.count
    return jobs


# ---------------------------------------------------------------- helpers

def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def proc_status(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def cpu_seconds(pid):
    """utime + stime of pid (all its threads), seconds; -1 if unreadable."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1.0


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def socket_table():
    """inode -> (proto, local port, remote port, state) from /proc/net."""
    out = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open("/proc/net/" + proto) as f:
                next(f)
                for line in f:
                    p = line.split()
                    lport = int(p[1].rsplit(":", 1)[1], 16)
                    rport = int(p[2].rsplit(":", 1)[1], 16)
                    out[p[9]] = (proto[:3], lport, rport, p[3])
        except (OSError, StopIteration):
            pass
    return out


TCP_STATES = {"01": "ESTABLISHED", "08": "CLOSE_WAIT", "0A": "LISTEN", "06": "TIME_WAIT"}


def fd_kinds(pid, upstream_port):
    """Descriptors of pid by kind: file, udp, tcp-listen, tcp-upstream, ..."""
    kinds = collections.Counter()
    table = socket_table()
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return kinds
    for n in names:
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", t)
        if not m:
            kinds["anon:" + t.split("[")[0] if t.startswith("anon_inode") else
                  "pipe" if t.startswith("pipe:") else "file"] += 1
            continue
        s = table.get(m.group(1))
        if s is None:
            kinds["socket-other"] += 1
        elif s[0] == "udp":
            kinds["udp"] += 1
        elif s[3] == "0A":
            kinds["tcp-listen"] += 1
        elif s[2] == upstream_port:
            kinds["tcp-upstream-" + TCP_STATES.get(s[3], s[3])] += 1
        else:
            kinds["tcp-other"] += 1
    return kinds


# ---------------------------------------------------------------- the run

class Env:
    def __init__(self, a):
        self.a = a
        self.work = a.workdir
        self.file_root = os.path.join(self.work, "fileroot")
        self.ngx_dir = os.path.join(self.work, "ngx")
        self.ngx_root = os.path.join(self.ngx_dir, "root", "base")
        self.payload = os.path.join(self.work, "payload")
        self.out = os.path.join(self.work, "out")
        self.procs = {}           # pid -> Popen, everything we started
        self.gw = self.ngx = None
        self.relays = []          # [(Popen, port, stats path)]
        self.gw_port = self.ngx_port = self.m_port = None
        self.gw_log = os.path.join(self.work, "gateway.log")

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs[p.pid] = p
        return p

    def reap(self, p):
        self.procs.pop(p.pid, None)

    def stop(self, p, wait=5.0):
        """SIGTERM one process we started, SIGKILL after `wait`; its status."""
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(wait)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.reap(p)
        return p.returncode

    def stop_all(self):
        for p in list(self.procs.values()):
            self.stop(p, 3.0)

    # -- nginx
    def nginx_up(self):
        d = self.ngx_dir
        for sub in ("logs", "tmp", "root/base/src", "root/base/up"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        for _ in range(3):
            self.ngx_port = free_port(socket.SOCK_STREAM)
            conf = """daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    keepalive_timeout {ka}s;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {d}/root;
        client_max_body_size 0;
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
""".format(d=d, port=self.ngx_port, ka=self.a.keepalive)
            with open(os.path.join(d, "nginx.conf"), "w") as f:
                f.write(conf)
            with open(d + "/logs/stdout", "a") as out:
                p = self.spawn(["nginx", "-e", d + "/logs/error.log", "-p", d,
                                "-c", d + "/nginx.conf"],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            for _ in range(50):
                if p.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.ngx_port), 0.5).close()
                    self.ngx = p
                    return
                except OSError:
                    time.sleep(0.1)
            self.stop(p)
        raise SystemExit("soak: nginx did not start: see %s/logs" % d)

    # -- gateway
    def gateway_up(self):
        a = self.a
        cfg = os.path.join(self.work, "gw.ini")
        for _ in range(3):
            self.gw_port = free_port(socket.SOCK_DGRAM)
            self.m_port = free_port(socket.SOCK_STREAM)
            with open(cfg, "w") as f:
                f.write("""; written by tests/soak/soak.py
[server]
listen = 127.0.0.1:{port}
metrics_listen = 127.0.0.1:{mport}
timeout = {tmo}
retries = {retries}
max_windowsize = 64
max_sessions = 1000
drain_timeout = 10
log_level = info
workers = {workers}

[backend files]
type = file
root = {root}

[backend web]
type = http
url = http://127.0.0.1:{nport}/base/

[route f]
match = f/
backend = files
key = {{rest}}
write = create

[route h]
match = h/
backend = web
key = {{rest}}
write = overwrite

[route hc]
match = hc/
backend = web
key = {{rest}}
write = create
""".format(port=self.gw_port, mport=self.m_port, tmo=a.gw_timeout, retries=a.gw_retries,
                    root=self.file_root, nport=self.ngx_port, workers=a.workers))
            argv = [a.gateway, "--config", cfg]
            if os.geteuid() == 0:
                argv.append("--allow-root")
            with open(self.gw_log, "a") as out:
                p = self.spawn(argv, stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT)
            for _ in range(100):
                if p.poll() is not None:
                    break
                if self.metrics() is not None:
                    self.gw = p
                    return
                time.sleep(0.05)
            self.stop(p)
        raise SystemExit("soak: gateway did not start: %s" % tail(self.gw_log))

    def metrics(self):
        """Parsed /metrics: {(name, labels): value}; None when unreachable."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.m_port,
                                        timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, val = line.rpartition(" ")
            try:
                out[key] = float(val)
            except ValueError:
                pass
        return out

    # -- relays
    def relays_up(self):
        a = self.a
        for k in range(a.relays):
            stats = os.path.join(self.work, "relay%d.json" % k)
            out = os.path.join(self.work, "relay%d.out" % k)
            with open(out, "w") as o, open(out + ".err", "w") as e:
                p = self.spawn([PY, os.path.join(INTEG, "relay.py"),
                                "--target", "127.0.0.1:%d" % self.gw_port,
                                "--drop", str(a.drop), "--dup", str(a.dup),
                                "--reorder", str(a.reorder), "--seed", str(a.seed * 100 + k),
                                "--lifetime", str(a.budget + 300), "--stats", stats],
                               stdin=subprocess.DEVNULL, stdout=o, stderr=e)
            port = None
            for _ in range(100):
                try:
                    with open(out) as f:
                        m = re.search(r"PORT (\d+)", f.read())
                except OSError:
                    m = None
                if m:
                    port = int(m.group(1))
                    break
                if p.poll() is not None:
                    break
                time.sleep(0.05)
            if port is None:
                raise SystemExit("soak: relay %d did not start: %s" % (k, tail(out + ".err")))
            self.relays.append((p, port, stats))

    def pick_path(self, job):
        """(port, relay index or None); the least-loaded relay by descriptors."""
        if job.relayed and self.relays:
            best = min(range(len(self.relays)), key=lambda k: fd_count(self.relays[k][0].pid))
            if fd_count(self.relays[best][0].pid) < RELAY_FD_MAX:
                return self.relays[best][1], best
            job.spilled = True
        return self.gw_port, None


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-n:])
    except OSError:
        return "(no %s)" % path


def prepare_files(env, jobs, seed):
    """Sources of gets in their backend root, payloads of puts; content from
    one seeded stream so a rerun with the same seed sends the same bytes."""
    r = random.Random("soak-data/%d" % seed)
    os.makedirs(os.path.join(env.file_root, "src"), exist_ok=True)
    os.makedirs(os.path.join(env.file_root, "up"), exist_ok=True)
    os.makedirs(env.payload, exist_ok=True)
    os.makedirs(env.out, exist_ok=True)
    total = 0
    for j in jobs:
        data = r.randbytes(j.size)
        # the client's reference copy is not the file the server reads, so
        # a change on the server's side cannot agree with itself
        j.local = os.path.join(env.payload, "j%d" % j.id)
        with open(j.local, "wb") as f:
            f.write(data)
        if j.op == "get":
            base = env.file_root if j.backend == "file" else env.ngx_root
            j.served = os.path.join(base, j.remote.split("/", 1)[1])
            with open(j.served, "wb") as f:
                f.write(data)
        j.sha = hashlib.sha256(data).hexdigest()
        total += j.size
    return total


def warm_probe(env, tag):
    """One direct get through each backend, as at the start as at the end,
    so both descriptor snapshots hold the same kept-alive upstream state.
    With several workers each has its own connection pool: 8 gets per
    worker, each from a port of its own, so every worker's pool is probed
    (all on one worker: 2 in 2^16 with 2 workers)."""
    n = 1 if env.a.workers <= 1 else 8 * env.a.workers
    for route, path in (("f", os.path.join(env.file_root, "src", "probe")),
                        ("h", os.path.join(env.ngx_root, "src", "probe"))):
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(os.urandom(3000))
        r = subprocess.run([env.a.tftpload, "--server", "127.0.0.1", "--port", str(env.gw_port),
                            "--file", "%s/src/probe" % route, "--expect", path,
                            "--count", str(n), "--concurrency", "1",
                            "--timeout-ms", "500", "--retries", "6"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise SystemExit("soak: %s probe of %s failed: %s %s" % (tag, route, r.stdout, r.stderr))


FAIL_RE = re.compile(r"^tftpload: transfer (\d+) failed: (.*)$")
OK_RE = re.compile(r"transfers_ok=(\d+) transfers_failed=(\d+)")


def launch(env, job):
    a = env.a
    port, job.via = env.pick_path(job)
    out_prefix = os.path.join(env.out, "j%d" % job.id)
    if job.client == "tftpload":
        argv = [a.tftpload, "--server", "127.0.0.1", "--port", str(port),
                "--file", job.remote, "--expect", job.local, "--op", job.op,
                "--count", str(job.count), "--concurrency", str(job.count),
                "--timeout-ms", str(a.client_timeout_ms), "--retries", str(a.client_retries),
                "--duration-limit", str(a.job_limit)]
        if job.blksize:
            argv += ["--blksize", str(job.blksize)]
        if job.windowsize:
            argv += ["--windowsize", str(job.windowsize)]
        if job.tsize:
            argv.append("--tsize")
    else:
        opts = []
        if job.blksize:
            opts += ["-o", "blksize=%d" % job.blksize]
        if job.windowsize:
            opts += ["-o", "windowsize=%d" % job.windowsize]
        if job.tsize:
            opts += ["-o", "tsize=%d" % (0 if job.op == "get" else job.size)]
        common = ["--timeout", "%.3f" % (a.client_timeout_ms / 1000.0),
                  "--retries", str(a.client_retries)]
        if job.client == "abort":
            argv = [PY, os.path.join(HERE, "abortput.py"), "127.0.0.1", str(port),
                    job.local, job.remote + ".1", "--after", str(job.after),
                    "--how", job.how] + opts + common
        elif job.op == "get":
            argv = [PY, os.path.join(INTEG, "tftpraw.py"), "get", "127.0.0.1", str(port),
                    job.remote, out_prefix + ".got"] + opts + common
        else:
            argv = [PY, os.path.join(INTEG, "tftpraw.py"), "put", "127.0.0.1", str(port),
                    job.local, job.remote + ".1"] + opts + common
    job.started = time.monotonic()
    with open(out_prefix + ".out", "w") as out, open(out_prefix + ".err", "w") as err:
        return env.spawn(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)


MISMATCH_RE = re.compile(r"differs from --expect|file ends at|file longer than|"
                         r"^tsize \d+, expected|has \d+ bytes, blksize")


def classify(why):
    """A failure's kind: mismatch (integrity), giveup (loss), tftp-error, other."""
    if MISMATCH_RE.search(why):
        return "mismatch"
    if why.startswith("timed out after") or why.startswith("timeout"):
        return "giveup"
    if why.startswith("server ERROR") or why.startswith("error "):
        return "tftp-error"
    return "other"


def collect(env, job, p):
    job.ended = time.monotonic()
    env.reap(p)
    out_prefix = os.path.join(env.out, "j%d" % job.id)
    with open(out_prefix + ".out", errors="replace") as f:
        out = f.read()
    with open(out_prefix + ".err", errors="replace") as f:
        err = f.read()
    rc = p.returncode
    if job.client == "tftpload":
        m = OK_RE.search(out)
        if not m:
            job.unattributed = job.count
            job.detail += " tftpload exit %d without a summary: %s" % (rc, err.strip()[-200:])
            return
        job.ok = int(m.group(1))
        nfail = int(m.group(2))
        for line in err.splitlines():
            f = FAIL_RE.match(line)
            if f:
                job.failed[int(f.group(1))] = f.group(2)
        job.unattributed = max(0, nfail - len(job.failed))
        if job.ok + nfail != job.count:
            job.unattributed += job.count - job.ok - nfail
    else:
        line = out.strip().splitlines()[-1] if out.strip() else "exit %d: %s" % (rc, err.strip()[-200:])
        if rc == 0 and job.op == "get":
            got = out_prefix + ".got"
            if os.path.exists(got) and sha256_file(got) == job.sha:
                job.ok = 1
                os.unlink(got)
            else:
                job.failed[1] = "file ends at / differs from --expect: tftpraw get returned other bytes"
        elif rc == 0 and job.client == "abort":
            job.abandoned = 1
        elif rc == 0:
            job.ok = 1
        else:
            job.failed[1] = ("violation: " if rc == 3 else "") + line


def run_jobs(env, jobs):
    a = env.a
    pending = collections.deque(jobs)
    running = {}              # pid -> (Popen, job)
    inflight = 0
    t0 = time.monotonic()
    deadline = t0 + a.budget
    samples = {"max_inflight": 0, "max_active_sessions": 0, "max_gw_fds": 0,
               "max_gw_rss_kib": 0, "max_relay_fds": [0] * len(env.relays), "rss_series": []}
    next_sample = 0.0
    last_note = t0
    while pending or running:
        now = time.monotonic()
        while pending and now < deadline and inflight + pending[0].count <= a.inflight:
            j = pending.popleft()
            p = launch(env, j)
            running[p.pid] = (p, j)
            inflight += j.count
        samples["max_inflight"] = max(samples["max_inflight"], inflight)
        for pid, (p, j) in list(running.items()):
            if p.poll() is not None:
                collect(env, j, p)
                del running[pid]
                inflight -= j.count
            elif now - j.started > a.job_limit + 30:
                env.stop(p)
                collect(env, j, p)
                j.detail += " killed after %d s" % (a.job_limit + 30)
                del running[pid]
                inflight -= j.count
        if now >= deadline and pending:
            log("time budget of %d s spent: %d jobs not started" % (a.budget, len(pending)))
            pending.clear()
        if now >= next_sample:
            next_sample = now + 1.0
            if env.gw.poll() is not None:
                log("the gateway died (status %s) during the run" % env.gw.returncode)
                break
            m = env.metrics() or {}
            act = m.get("tftpgw_active_sessions", 0)
            rss = proc_status(env.gw.pid, "VmRSS")
            samples["max_active_sessions"] = max(samples["max_active_sessions"], act)
            samples["max_gw_fds"] = max(samples["max_gw_fds"], fd_count(env.gw.pid))
            samples["max_gw_rss_kib"] = max(samples["max_gw_rss_kib"], rss)
            samples["rss_series"].append((round(now - t0, 1), rss))
            for k, (rp, _, _) in enumerate(env.relays):
                samples["max_relay_fds"][k] = max(samples["max_relay_fds"][k], fd_count(rp.pid))
            if now - last_note >= 15:
                last_note = now
                done = sum(1 for j in jobs if j.ended)
                log("%4.0f s: %d/%d jobs done, %d transfers in flight, %d sessions, rss %d KiB"
                    % (now - t0, done, len(jobs), inflight, act, rss))
        time.sleep(0.02)
    for pid, (p, j) in list(running.items()):      # only after the gateway died
        env.stop(p)
        collect(env, j, p)
    samples["seconds"] = round(time.monotonic() - t0, 1)
    return samples


# ---------------------------------------------------------------- checks

def check_store(env, jobs, sources_sha):
    """Stored uploads against what was sent; failed ones must have left
    nothing; no other file may exist in the upload directories."""
    res = collections.Counter()
    problems = []
    expected = set()
    for j in jobs:
        if j.op != "put" or j.started is None:
            continue
        for i, path in j.stored_paths(env):
            expected.add(path)
            if j.unattributed:
                # a failure tftpload did not name: cannot tell which one
                res["unattributed"] += 1
                continue
            failed = i in j.failed
            exists = os.path.exists(path)
            if j.abandoned:
                if exists:
                    res["abandoned_left_object"] += 1
                    problems.append("job %d: upload abandoned after block %d (%s) but %s exists"
                                    % (j.id, j.after, j.how, path))
                else:
                    res["abandoned_nothing_left"] += 1
            elif not failed:
                if not exists:
                    res["acked_not_stored"] += 1
                    problems.append("job %d put %d ACKed but %s missing" % (j.id, i, path))
                elif sha256_file(path) != j.sha:
                    res["acked_stored_wrong"] += 1
                    problems.append("job %d put %d ACKed but %s differs (%d bytes, sent %d)"
                                    % (j.id, i, path, os.path.getsize(path), j.size))
                else:
                    res["stored_ok"] += 1
            elif exists:
                res["failed_left_object"] += 1
                problems.append("job %d put %d failed (%s) but %s exists"
                                % (j.id, i, j.failed[i], path))
            else:
                res["failed_nothing_left"] += 1
    for base in (os.path.join(env.file_root, "up"), os.path.join(env.ngx_root, "up")):
        for dirpath, _, files in os.walk(base):
            for fn in files:
                p = os.path.join(dirpath, fn)
                if p not in expected:
                    res["stray"] += 1
                    problems.append("stray file %s (%d bytes)" % (p, os.path.getsize(p)))
    # a hidden upload temp file would show up at the root or in up/
    for dirpath, _, files in os.walk(env.file_root):
        for fn in files:
            if fn.startswith("."):
                res["stray"] += 1
                problems.append("temp file left: %s" % os.path.join(dirpath, fn))
    body = os.path.join(env.ngx_dir, "tmp", "body")
    for dirpath, _, files in os.walk(body):
        for fn in files:
            res["nginx_temp_left"] += 1
            problems.append("nginx body temp left: %s" % os.path.join(dirpath, fn))
    for path, want in sources_sha.items():
        if sha256_file(path) != want:
            res["source_changed"] += 1
            problems.append("get source changed: %s" % path)
    return res, problems


def inject_store(env, jobs, what):
    """Self-check of the checks: damage the store the way a bug would."""
    if what not in ("put-corrupt", "put-missing", "put-stray", "abandoned-left"):
        return
    if what == "abandoned-left":
        j = next(j for j in jobs if j.abandoned)
        path = j.stored_paths(env)[0][1]
        shutil.copyfile(j.local, path)
        log("inject: %s on %s" % (what, path))
        return
    j = next(j for j in jobs if j.op == "put" and j.ok and not j.failed)
    path = j.stored_paths(env)[0][1]
    if what == "put-corrupt":
        with open(path, "r+b") as f:
            f.write(b"\0" if f.read(1) != b"\0" else b"\1")
    elif what == "put-missing":
        os.unlink(path)
    else:
        path = os.path.join(os.path.dirname(path), "stray")
        with open(path, "wb") as f:
            f.write(b"x")
    log("inject: %s on %s" % (what, path))


def relay_stats(env):
    tot = {d: collections.Counter() for d in ("c2s", "s2c")}
    for _, _, path in env.relays:
        try:
            with open(path) as f:
                s = json.load(f)
        except (OSError, ValueError):
            continue
        for d in tot:
            tot[d].update(s.get(d, {}))
    return {d: dict(c) for d, c in tot.items()}


def server_results(m):
    out = collections.Counter()
    for key, v in (m or {}).items():
        if key.startswith("tftpgw_transfers_finished_total{"):
            op = re.search(r'op="(\w+)"', key).group(1)
            res = re.search(r'result="(\w+)"', key).group(1)
            out["%s %s" % (op, res)] += int(v)
        elif key.startswith("tftpgw_retransmissions_total"):
            out["retransmissions"] += int(v)
    return dict(sorted(out.items()))


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=3000, help="transfers in all")
    ap.add_argument("--inflight", type=int, default=50, help="transfers at once, at most")
    ap.add_argument("--max-job", type=int, default=6, help="transfers per tftpload job, at most")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=int, default=330, help="seconds in which jobs may start")
    ap.add_argument("--job-limit", type=int, default=150, help="seconds one job may take")
    ap.add_argument("--relays", type=int, default=8)
    ap.add_argument("--relay-share", type=float, default=0.8, help="jobs sent through a relay")
    ap.add_argument("--drop", type=float, default=0.02)
    ap.add_argument("--dup", type=float, default=0.01)
    ap.add_argument("--reorder", type=float, default=0.01)
    ap.add_argument("--tftpraw-share", type=float, default=0.05)
    ap.add_argument("--abort-share", type=float, default=0.03,
                    help="jobs that are an upload abandoned halfway")
    ap.add_argument("--gw-timeout", type=int, default=300, help="gateway timeout (ms)")
    ap.add_argument("--gw-retries", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1, help="the gateway's [server] workers")
    ap.add_argument("--client-timeout-ms", type=int, default=300)
    ap.add_argument("--client-retries", type=int, default=10)
    ap.add_argument("--keepalive", type=int, default=5, help="nginx keepalive_timeout (s)")
    ap.add_argument("--allow-giveups", action="store_true",
                    help="loss give-ups (client timeouts) do not fail the run")
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--tftpload", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work directory's data")
    ap.add_argument("--markdown", help="append a figures table to this file")
    ap.add_argument("--inject", choices=("get-mismatch", "put-corrupt", "put-missing", "put-stray",
                                          "abandoned-left"),
                    help="self-check: plant one fault; the run must then fail")
    a = ap.parse_args(argv)
    a.gateway = os.path.abspath(a.gateway)
    a.tftpload = os.path.abspath(a.tftpload)
    a.workdir = os.path.abspath(a.workdir)

    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    env = Env(a)

    def on_term(signo, _frame):
        # run.sh's outer timeout: leave through `finally`, which stops
        # everything this run started
        raise SystemExit(128 + signo)
    signal.signal(signal.SIGTERM, on_term)
    t_start = time.monotonic()
    try:
        return run(env, a, t_start)
    finally:
        env.stop_all()


def run(env, a, t_start):
    jobs = make_plan(a)
    mix = collections.Counter()
    for j in jobs:
        mix["%s %s" % (j.backend, j.op)] += j.count
        mix["client " + j.client] += j.count
        if j.client == "abort":
            mix["abort " + j.how] += 1
        mix["relayed" if j.relayed else "direct"] += j.count
    log("plan: %d transfers in %d jobs, seed %d: %s"
        % (a.count, len(jobs), a.seed, ", ".join("%s %d" % kv for kv in sorted(mix.items()))))
    env.nginx_up()
    nbytes = prepare_files(env, jobs, a.seed)
    sources_sha = {j.served: j.sha for j in jobs if j.op == "get"}
    if a.inject == "get-mismatch":
        # self-check: a served source that differs from the client's copy
        j = next(j for j in jobs if j.op == "get")
        with open(j.served, "r+b") as f:
            f.seek(j.size // 2)
            b = f.read(1)
            f.seek(j.size // 2)
            f.write(bytes([b[0] ^ 0x55]))
        sources_sha[j.served] = sha256_file(j.served)
        log("inject: byte %d of %s flipped" % (j.size // 2, j.served))
    log("%.1f MB of sources and payloads written" % (nbytes / 1e6))
    env.gateway_up()
    warm_probe(env, "start")
    time.sleep(0.5)
    kinds0 = fd_kinds(env.gw.pid, env.ngx_port)
    fds0 = sum(kinds0.values())
    log("gateway pid %d on 127.0.0.1:%d, %d descriptors at start" % (env.gw.pid, env.gw_port, fds0))
    env.relays_up()
    log("%d relays (drop %.3g dup %.3g reorder %.3g): ports %s"
        % (a.relays, a.drop, a.dup, a.reorder, " ".join(str(r[1]) for r in env.relays)))

    samples = run_jobs(env, jobs)
    t_jobs = samples["seconds"]

    # relays: alive to the end? then stop them (their final stats)
    relay_dead = [k for k, (p, _, _) in enumerate(env.relays) if p.poll() is not None]
    for p, _, _ in env.relays:
        env.stop(p)
    rstats = relay_stats(env)

    # the gateway goes idle: every session over (dallies included)
    gw_alive = env.gw.poll() is None
    idle_after = None
    m = None
    t_idle = time.monotonic()
    while gw_alive and time.monotonic() - t_idle < 60:
        m = env.metrics()
        if m is not None and m.get("tftpgw_active_sessions", -1) == 0:
            idle_after = round(time.monotonic() - t_idle, 1)
            break
        time.sleep(0.5)
    # nginx drops idle keep-alive connections after its keepalive_timeout;
    # the probe then lets libcurl prune the dead ones, as at the start
    kinds1 = collections.Counter()
    kinds_idle = collections.Counter()
    if gw_alive:
        kinds_idle = fd_kinds(env.gw.pid, env.ngx_port)
        time.sleep(a.keepalive + 1.5)
        m = env.metrics()
        warm_probe(env, "end")
        time.sleep(0.5)
        kinds1 = fd_kinds(env.gw.pid, env.ngx_port)
    fds1 = sum(kinds1.values())
    hwm = proc_status(env.gw.pid, "VmHWM") if gw_alive else -1
    gw_cpu = cpu_seconds(env.gw.pid) if gw_alive else -1.0
    srv = server_results(env.metrics() if gw_alive else m)

    # SIGTERM: the gateway must exit 0
    t_term = time.monotonic()
    gw_rc = env.stop(env.gw, 20.0) if gw_alive else env.gw.returncode
    term_s = round(time.monotonic() - t_term, 2)
    env.stop(env.ngx)

    inject_store(env, jobs, a.inject)
    store, problems = check_store(env, jobs, sources_sha)

    # tally
    t = collections.Counter()
    kinds = collections.Counter()
    per = collections.defaultdict(collections.Counter)
    for j in jobs:
        if j.started is None:
            t["not_started"] += j.count
            continue
        t["attempted"] += j.count
        t["completed"] += j.ok
        t["abandoned"] += j.abandoned
        t["failed"] += len(j.failed) + j.unattributed
        t["unattributed"] += j.unattributed
        key = "%s %s" % (j.backend, j.op)
        per[key]["attempted"] += j.count
        per[key]["completed"] += j.ok
        per[key]["abandoned"] += j.abandoned
        per[key]["bytes"] += j.ok * j.size
        per[key]["relayed" if j.via is not None else "direct"] += j.count
        t["spilled_direct"] += j.count if j.spilled else 0
        t["bytes"] += j.ok * j.size
        for i, why in sorted(j.failed.items()):
            k = classify(why)
            kinds[k] += 1
            problems.append("job %d (%s %s %s %s %d B via %s) transfer %d: %s"
                            % (j.id, j.client, j.backend, j.op, j.opts_text(), j.size,
                               "relay%d" % j.via if j.via is not None else "direct", i, why))
        if j.unattributed:
            problems.append("job %d: %d failures not attributed: %s" % (j.id, j.unattributed, j.detail))
    mismatches = kinds["mismatch"] + store["acked_stored_wrong"]
    checks = [
        ("all %d planned transfers attempted" % a.count, t["attempted"] == a.count),
        ("no failures%s" % (" other than loss give-ups" if a.allow_giveups else ""),
         t["failed"] == (kinds["giveup"] if a.allow_giveups else 0) and not t["unattributed"]),
        ("0 checksum mismatches (gets and stored uploads)", mismatches == 0),
        ("0 uploads ACKed final but not stored or stored wrong",
         store["acked_not_stored"] + store["acked_stored_wrong"] == 0),
        ("0 failed or abandoned uploads that left an object behind",
         store["failed_left_object"] + store["abandoned_left_object"] == 0),
        ("0 stray or temp files, get sources unchanged",
         store["stray"] + store["nginx_temp_left"] + store["source_changed"] == 0),
        ("gateway alive to the end", gw_alive),
        ("gateway idle (0 active sessions) after the run", idle_after is not None),
        ("gateway descriptors at end equal to start (%d -> %d)" % (fds0, fds1),
         gw_alive and kinds0 == kinds1),
        ("gateway exits 0 on SIGTERM (status %s)" % gw_rc, gw_rc == 0),
        ("relays alive to the end", not relay_dead),
    ]
    report = {
        "seed": a.seed, "count": a.count, "inflight": a.inflight, "relays": a.relays,
        "relay_share": a.relay_share, "loss": {"drop": a.drop, "dup": a.dup, "reorder": a.reorder},
        "gateway": {"timeout_ms": a.gw_timeout, "retries": a.gw_retries},
        "client": {"timeout_ms": a.client_timeout_ms, "retries": a.client_retries},
        "jobs": len(jobs), "transfers": dict(t), "failure_kinds": dict(kinds),
        "per_kind": {k: dict(v) for k, v in sorted(per.items())},
        "mix": dict(mix), "store": dict(store), "mismatches": mismatches,
        "gateway_vmhwm_kib": hwm, "gateway_cpu_s": round(gw_cpu, 2), "gateway_fds": {"start": fds0, "end": fds1,
                                                  "start_kinds": dict(kinds0),
                                                  "idle_kinds": dict(kinds_idle),
                                                  "end_kinds": dict(kinds1)},
        "server_results": srv, "relay_stats": rstats, "samples": samples,
        "idle_after_s": idle_after, "sigterm_status": gw_rc, "sigterm_seconds": term_s,
        "transfer_seconds": t_jobs, "total_seconds": round(time.monotonic() - t_start, 1),
        "checks": [[name, ok] for name, ok in checks], "problems": problems[:200],
    }
    with open(os.path.join(a.workdir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)

    log("transfers: attempted %d, completed %d, abandoned by design %d, failed %d (%s); "
        "%.1f MB verified in %.1f s"
        % (t["attempted"], t["completed"], t["abandoned"], t["failed"],
           ", ".join("%s %d" % kv for kv in sorted(kinds.items())) or "none",
           t["bytes"] / 1e6, t_jobs))
    for k, v in sorted(per.items()):
        log("  %-10s attempted %5d completed %5d relayed %5d direct %5d  %8.1f MB"
            % (k, v["attempted"], v["completed"], v["relayed"], v["direct"], v["bytes"] / 1e6))
    log("uploads: stored ok %d, ACKed but missing %d, ACKed but wrong %d, failed and left "
        "an object %d, failed and left nothing %d, abandoned and left an object %d, abandoned "
        "and left nothing %d, stray %d"
        % (store["stored_ok"], store["acked_not_stored"], store["acked_stored_wrong"],
           store["failed_left_object"], store["failed_nothing_left"],
           store["abandoned_left_object"], store["abandoned_nothing_left"], store["stray"]))
    log("checksum mismatches: %d" % mismatches)
    log("gateway: %.1f s of CPU in all (%.0f %% of one core over the transfer phase)"
        % (gw_cpu, 100.0 * gw_cpu / t_jobs if t_jobs > 0 else 0))
    log("gateway: VmHWM %d KiB, descriptors %d at start, %d at end (%s), idle %s s after the "
        "last job, SIGTERM -> status %s in %.2f s"
        % (hwm, fds0, fds1, ", ".join("%s %d" % kv for kv in sorted(kinds1.items())),
           idle_after, gw_rc, term_s))
    log("gateway: descriptors when idle, before nginx's keep-alive timeout and the end probe: "
        "%d (%s)" % (sum(kinds_idle.values()),
                     ", ".join("%s %d" % kv for kv in sorted(kinds_idle.items()))))
    log("gateway: peak %d active sessions, peak %d descriptors, results %s"
        % (samples["max_active_sessions"], samples["max_gw_fds"],
           ", ".join("%s %d" % kv for kv in srv.items())))
    log("relays: c2s %s; s2c %s; peak descriptors %s"
        % (rstats["c2s"], rstats["s2c"], samples["max_relay_fds"]))
    log("peak transfers in flight: %d; relayed by plan but sent direct (relay descriptors "
        "near select()'s limit): %d; whole run %.1f s"
        % (samples["max_inflight"], t["spilled_direct"], report["total_seconds"]))
    for pr in problems[:30]:
        log("  problem: " + pr)
    ok = True
    for name, good in checks:
        log("%s %s" % ("PASS" if good else "FAIL", name))
        ok = ok and good
    if a.markdown:
        write_markdown(a.markdown, report)
    if ok and not a.keep:
        for d in (env.payload, env.file_root, env.ngx_root, env.out):
            shutil.rmtree(d, ignore_errors=True)
    log("%s (report: %s)" % ("all invariants hold" if ok else "INVARIANT FAILED",
                             os.path.join(a.workdir, "report.json")))
    return 0 if ok else 1


def write_markdown(path, r):
    t = r["transfers"]
    st = r["store"]
    rs = r["relay_stats"]
    lines = [
        "| figure | value |", "|---|---|",
        "| transfers attempted / completed / failed | %d / %d / %d |"
        % (t.get("attempted", 0), t.get("completed", 0), t.get("failed", 0)),
        "| payload verified | %.1f MB in %.1f s |" % (t.get("bytes", 0) / 1e6, r["transfer_seconds"]),
        "| checksum mismatches | %d |" % r["mismatches"],
        "| uploads stored and verified | %d |" % st.get("stored_ok", 0),
        "| uploads ACKed final but missing / wrong | %d / %d |"
        % (st.get("acked_not_stored", 0), st.get("acked_stored_wrong", 0)),
        "| failed uploads that left an object | %d |" % st.get("failed_left_object", 0),
        "| stray or temp files | %d |" % (st.get("stray", 0) + st.get("nginx_temp_left", 0)),
        "| gateway peak RSS (VmHWM) | %d KiB |" % r["gateway_vmhwm_kib"],
        "| gateway descriptors start / end | %d / %d |" % (r["gateway_fds"]["start"],
                                                         r["gateway_fds"]["end"]),
        "| peak active sessions / transfers in flight | %d / %d |"
        % (r["samples"]["max_active_sessions"], r["samples"]["max_inflight"]),
        "| gateway status on SIGTERM | %s (%.2f s) |" % (r["sigterm_status"], r["sigterm_seconds"]),
        "| relay datagrams in (c2s / s2c) | %d / %d |" % (rs["c2s"].get("in", 0), rs["s2c"].get("in", 0)),
        "| dropped / duplicated / reordered | %d / %d / %d |"
        % tuple(rs["c2s"].get(k, 0) + rs["s2c"].get(k, 0) for k in ("dropped", "duplicated", "reordered")),
        "| gateway retransmissions | %d |" % r["server_results"].get("retransmissions", 0),
        "| whole run | %.1f s |" % r["total_seconds"],
    ]
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
