#!/usr/bin/env python3
"""benchtool - helpers for tests/bench/run.sh (stdlib only).

  benchtool.py probe HOST PORT FILE BLKSIZE [WINDOWSIZE]
      Send one RRQ asking for blksize, tsize=0 and (if given) windowsize, print
      what the server granted as "blksize=N windowsize=N tsize=N" ("-" for an
      option it left out of its OACK, "none" for all of them when it answered
      with DATA straight away), then end the transfer with an ERROR.
  benchtool.py tree-sample PID INTERVAL_S
      Until SIGTERM, every INTERVAL_S: sum VmRSS over PID and its children,
      and note each child's utime+stime. Then print "PEAK_KIB CHILD_TICKS":
      the largest sum, and the CPU ticks of all children seen (the last value
      seen of each). For servers that fork per transfer and ignore SIGCHLD
      (tftpd-hpa): their children are never waited for, so neither the
      parent's VmHWM nor its cutime says anything about the transfers.
  benchtool.py report RUNDIR OUT.md OUT.png
      Write the report from RUNDIR/raw.csv, oack.csv, meta.env and
      commands.txt (all written by run.sh) and draw the chart with gnuplot.
"""

import csv
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

MB = 1e6
MIB = 1048576.0

# ---------------------------------------------------------------- probe


def probe(host, port, name, blksize, windowsize=None):
    req = struct.pack("!H", 1) + name.encode() + b"\0octet\0"
    req += b"blksize\0%d\0tsize\0000\0" % blksize
    if windowsize:
        req += b"windowsize\0%d\0" % windowsize
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    got = None
    for _ in range(3):
        s.sendto(req, (host, port))
        try:
            got, peer = s.recvfrom(70000)
            break
        except socket.timeout:
            continue
    if got is None:
        print("error=timeout")
        return 2
    op = struct.unpack("!H", got[:2])[0]
    if op == 5:
        print("error=%d" % struct.unpack("!H", got[2:4])[0])
        return 1
    opts = {}
    if op == 6:
        parts = got[2:].split(b"\0")
        for k, v in zip(parts[0::2], parts[1::2]):
            opts[k.decode(errors="replace").lower()] = v.decode(errors="replace")
        # RFC 2347: a client that will not go on answers the OACK with ERROR 8
        s.sendto(struct.pack("!HH", 5, 8) + b"probe only\0", peer)
        print("blksize=%s windowsize=%s tsize=%s" % (
            opts.get("blksize", "-"), opts.get("windowsize", "-"), opts.get("tsize", "-")))
    else:
        s.sendto(struct.pack("!HH", 5, 0) + b"probe only\0", peer)
        print("blksize=none windowsize=none tsize=none")
    return 0


# ---------------------------------------------------------------- rss-sample

def children_of(pid):
    """{child pid: utime + stime in ticks} of PID's children."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # the command may hold spaces and parentheses: fields follow the last ')'
        fields = st[st.rfind(")") + 2:].split()
        if fields and int(fields[1]) == pid:
            out[int(d)] = int(fields[11]) + int(fields[12])
    return out


def rss_kib(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0


def tree_sample(pid, interval):
    peak = 0
    ticks = {}
    stop = [False]

    def on_term(*_):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_term)
    while not stop[0]:
        kids = children_of(pid)
        ticks.update(kids)
        peak = max(peak, rss_kib(pid) + sum(rss_kib(c) for c in kids))
        time.sleep(interval)
    print(peak, sum(ticks.values()))
    return 0


# ---------------------------------------------------------------- report

SERVERS = ["gw-file", "old-file", "gw-sp", "old-sp", "gw-w2", "gw-http", "old-http", "gw-cache", "old-cache",
           "gw-cache-w2", "tftpd-hpa", "atftpd", "dnsmasq"]
GATEWAYS = ["gw-file", "gw-http", "gw-cache"]
PEERS = ["tftpd-hpa", "atftpd", "dnsmasq"]
LABEL = {
    "gw-file": "tftpgw file", "gw-http": "tftpgw http", "gw-cache": "tftpgw cache",
    "old-file": "old file", "old-http": "old http", "old-cache": "old cache",
    "gw-sp": "tftpgw file single-port", "old-sp": "old file single-port",
    "gw-w2": "tftpgw file, 2 workers",
    "gw-cache-w2": "tftpgw cache, 2 workers",
    "tftpd-hpa": "tftpd-hpa", "atftpd": "atftpd", "dnsmasq": "dnsmasq",
}
SINGLE = [("ls1468", "blksize 1468, lock-step"), ("ws8", "blksize 1468, windowsize 8"),
          ("ws16", "blksize 1468, windowsize 16"), ("ws32", "blksize 1468, windowsize 32"),
          ("ws64", "blksize 1468, windowsize 64"), ("ls8192", "blksize 8192, lock-step")]
WS_OF = {"ls1468": 1, "ws8": 8, "ws16": 16, "ws32": 32, "ws64": 64}


def read_meta(path):
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    meta[k] = v
    return meta


def fnum(row, key):
    try:
        return float(row.get(key, ""))
    except ValueError:
        return None


class Results:
    def __init__(self, rundir):
        self.rundir = rundir
        self.rows = []
        with open(os.path.join(rundir, "raw.csv")) as f:
            self.rows = list(csv.DictReader(f))
        self.oack = {}
        path = os.path.join(rundir, "oack.csv")
        if os.path.exists(path):
            with open(path) as f:
                for r in csv.DictReader(f):
                    self.oack[(r["server"], r["req_blksize"], r["req_windowsize"])] = r

    def runs(self, scen, server):
        return [r for r in self.rows if r["scenario"] == scen and r["server"] == server]

    def ok_runs(self, scen, server):
        return [r for r in self.runs(scen, server) if r["rc"] == "0"]

    def med(self, scen, server, key):
        vals = [fnum(r, key) for r in self.ok_runs(scen, server)]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    def servers(self):
        seen = {r["server"] for r in self.rows if r["scenario"] != "mem"}
        return [s for s in SERVERS if s in seen] + sorted(seen - set(SERVERS))

    def reps(self):
        return len({r["rep"] for r in self.rows})

    def granted(self, server, blksize, windowsize):
        r = self.oack.get((server, str(blksize), str(windowsize)))
        return r


def fmt(v, nd=1, unit=""):
    if v is None:
        return "n/a"
    return ("%." + str(nd) + "f%s") % (v, unit)


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def single_cell(res, scen, server):
    runs = res.runs(scen, server)
    if not runs:
        return "–"
    v = res.med(scen, server, "aggregate_MBps")
    okn = len(res.ok_runs(scen, server))
    cell = fmt(v)
    if scen.startswith("ws"):
        g = res.granted(server, 1468, 64)
        if g is not None and g["windowsize"] in ("-", "none"):
            cell += " †"
    if scen == "ls8192":
        g = res.granted(server, 8192, "")
        if g is not None and g["blksize"] not in ("8192",):
            cell += " ‡"
    if okn < len(runs):
        cell += " (%d/%d failed)" % (len(runs) - okn, len(runs))
    return cell


def storm_stats(res, server, scen="storm"):
    a = res.med(scen, server, "aggregate_MBps")
    wall = res.med(scen, server, "seconds")
    p50 = res.med(scen, server, "p50_s")
    p99 = res.med(scen, server, "p99_s")
    cpugb = None
    ups = None
    vals, uvals = [], []
    for r in res.ok_runs(scen, server):
        b, c, u = fnum(r, "bytes"), fnum(r, "cpu_s"), fnum(r, "upstream_cpu_s")
        if b and c is not None:
            vals.append(c / (b / 1e9))
        if b and u is not None:
            uvals.append(u / (b / 1e9))
    if vals:
        cpugb = statistics.median(vals)
    if uvals:
        ups = statistics.median(uvals)
    rss = res.med(scen, server, "peak_rss_kib")
    runs = res.runs(scen, server)
    method = runs[0]["rss_method"] if runs else ""
    failed = sum(int(fnum(r, "transfers_failed") or 0) for r in runs)
    bad = len(runs) - len(res.ok_runs(scen, server))
    return dict(agg=a, wall=wall, p50=p50, p99=p99, cpugb=cpugb, ups=ups,
                rss=rss, method=method, failed=failed, badruns=bad, nruns=len(runs))


def mem_target_kib(meta):
    ws = int(meta.get("MEM_WINDOWSIZE", "64"))
    bs = int(meta.get("MEM_BLKSIZE", "1468"))
    n = int(meta.get("MEM_CLIENTS", "100"))
    return (8 * MIB + n * (ws * bs + 16384)) / 1024.0


def write_chart(res, rundir, png):
    servers = res.servers()
    ws_dat = os.path.join(rundir, "chart_ws.dat")
    with open(ws_dat, "w") as f:
        f.write("# windowsize " + " ".join(servers) + "\n")
        for scen, ws in sorted(WS_OF.items(), key=lambda x: x[1]):
            vals = [res.med(scen, s, "aggregate_MBps") for s in servers]
            f.write("%d %s\n" % (ws, " ".join("NaN" if v is None else "%.2f" % v for v in vals)))
    storm_dat = os.path.join(rundir, "chart_storm.dat")
    with open(storm_dat, "w") as f:
        f.write("# server p50_s p99_s wall_s\n")
        for s in servers:
            st = storm_stats(res, s)
            if st["nruns"] == 0:
                continue
            f.write('"%s" %s %s %s\n' % (LABEL.get(s, s), *("NaN" if v is None else "%.3f" % v
                                                           for v in (st["p50"], st["p99"], st["wall"]))))
    gp = os.path.join(rundir, "chart.gp")
    plots = []
    styles = {"gw-file": "lw 3 dt 1 lc rgb '#1f4e9c'", "gw-http": "lw 3 dt 2 lc rgb '#3a8fd9'",
              "gw-cache": "lw 3 dt 3 lc rgb '#7b3fb5'", "tftpd-hpa": "lw 2 dt 1 lc rgb '#d95f02'",
              "atftpd": "lw 2 dt 1 lc rgb '#1b9e77'", "dnsmasq": "lw 2 dt 4 lc rgb '#a50f15'",
              "old-file": "lw 1 dt 1 lc rgb '#8c8c8c'", "old-http": "lw 1 dt 2 lc rgb '#8c8c8c'",
              "old-cache": "lw 1 dt 3 lc rgb '#8c8c8c'"}
    storm_max = 0.0
    for s in servers:
        st = storm_stats(res, s)
        storm_max = max([storm_max] + [v for v in (st["p50"], st["p99"], st["wall"]) if v])
    for i, s in enumerate(servers):
        plots.append("'%s' using 1:%d with linespoints %s pt %d title '%s'" % (
            ws_dat, i + 2, styles.get(s, "lw 2"), 5 + i, LABEL.get(s, s)))
    reps = res.reps()
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 1400,560 font 'DejaVu Sans,10'
set output '%s'
set multiplot layout 1,2 title 'TFTP on loopback, server on one CPU, client on another (median of %d)'
set title 'One transfer of one %s MiB file, blksize 1468'
set xlabel 'windowsize (1 = lock-step; servers that ignore the option run lock-step)'
set ylabel 'MB/s (10^6 B/s)'
set logscale x 2
set xtics (1, 8, 16, 32, 64)
set xrange [0.8:80]
set yrange [0:*]
set datafile missing 'NaN'
set grid ytics
set key top left
plot %s
unset logscale x
set xtics auto
set autoscale x
set title 'Boot storm: %s RRQs of %s MiB, %s in flight, lock-step blksize 1468'
set xlabel ''
set ylabel 'seconds'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -20
set yrange [0:%.2f]
set key top left
plot '%s' using 2:xtic(1) lc rgb '#9ecae1' title 'p50 per transfer', \\
     '' using 3 lc rgb '#3182bd' title 'p99 per transfer', \\
     '' using 4 lc rgb '#636363' title 'whole storm'
unset multiplot
""" % (png, reps, res_meta.get("BIG_MIB", "?"), ",\\\n     ".join(plots) or "NaN notitle",
            res_meta.get("STORM_COUNT", "?"), res_meta.get("STORM_MIB", "?"),
            res_meta.get("STORM_CONC", "?"), (storm_max or 1.0) * 1.25, storm_dat))
    try:
        r = subprocess.run(["gnuplot", gp], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "gnuplot did not run: %s" % e
    if r.returncode != 0:
        return "gnuplot failed: %s" % r.stderr.strip()[:300]
    return None


res_meta = {}


def old_new_table(res, meta, w):
    """New binary against old, per backend and scenario, from the same
    interleaved rounds (make bench-compare)."""
    if not any(r["server"].startswith("old-") for r in res.rows):
        return
    w("## Old and new binary, same run (median; new / old)")
    w("")
    w("The old binary is commit %s; the new one is the commit above. Both serve the same "
      "backends with the same configuration, interleaved in every round, so the ratio "
      "is the change's effect within this run's noise." % (meta.get("OLD_REV") or "?"))
    w("")
    w("| scenario | backend | new | old | new / old |")
    w("|---|---|---|---|---|")
    rows = [(scen, title, "aggregate_MBps", "MB/s", 1) for scen, title in SINGLE]
    rows += [("storm", "boot storm, aggregate", "aggregate_MBps", "MB/s", 1),
             ("storm", "boot storm, p99", "p99_s", "s", 1),
             ("storm", "boot storm, server CPU", "server_cpu_s", "s", 1),
             ("mem", "memory row, peak RSS", "peak_rss_kib", "MiB", 1024.0)]
    for scen, title, key, unit, div in rows:
        for kind in ("file", "sp", "http", "cache"):
            new, old = res.med(scen, "gw-" + kind, key), res.med(scen, "old-" + kind, key)
            if new is None and old is None:
                continue
            r = ratio(new, old)
            w("| %s | %s | %s %s | %s %s | %s |" % (
                title, kind, fmt(None if new is None else new / div, 2), unit,
                fmt(None if old is None else old / div, 2), unit, fmt(r, 3)))
    w("")
    w("MB/s: higher is better; seconds and MiB: lower is better.")
    w("")


def read_slope(rundir):
    """memslope rows (run.sh, measure_slope): {(who, backend): [KiB, ...]}."""
    out = {}
    try:
        with open(os.path.join(rundir, "slope.csv")) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) != 4:
                    continue
                try:
                    out.setdefault((parts[1], parts[2]), []).append(float(parts[3]))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


SLOPE_WINDOW_KIB = 16 * 1468 / 1024.0  # memslope.sh: windowsize 16, blksize 1468
SLOPE_TARGET_KIB = SLOPE_WINDOW_KIB + 16


def slope_table(slope, meta, w):
    """Memory per active transfer on every backend (issue 16's target)."""
    if not slope:
        return
    w("## Memory per active transfer")
    w("")
    w("tests/bench/memslope.sh: a fresh gateway serves 10 and then 40 concurrent RRQs of one "
      "4 MiB file, windowsize 16, blksize 1468 (a window of %.1f KiB); KiB per transfer = "
      "(peak RSS at 40 - peak RSS at 10) / 30, median of %d round(s). Target (issue 16): "
      "window + 16 KiB = %.1f KiB." % (SLOPE_WINDOW_KIB, max(len(v) for v in slope.values()),
                                        SLOPE_TARGET_KIB))
    w("")
    has_old = any(who == "old" for who, _ in slope)
    if has_old:
        w("| backend | new KiB | old KiB | new / old | within target |")
        w("|---|---|---|---|---|")
    else:
        w("| backend | KiB | within target |")
        w("|---|---|---|")
    for b in ("file", "http", "s3", "cache"):
        new = slope.get(("gw", b))
        if not new:
            continue
        n = statistics.median(new)
        met = "yes" if n <= SLOPE_TARGET_KIB else "**no**"
        if has_old:
            old = slope.get(("old", b))
            o = statistics.median(old) if old else None
            w("| %s | %.1f | %s | %s | %s |" % (b, n, fmt(o), fmt(ratio(n, o), 2), met))
        else:
            w("| %s | %.1f | %s |" % (b, n, met))
    w("")


def issue16_targets(res, w):
    """The boot-storm targets of issue 16: the server on one core against
    dnsmasq, per-port and single-port (sp: single-port rows run only in the
    storms)."""
    slope = read_slope(res.rundir)
    if not res.runs("storm", "dnsmasq") and not slope:
        return
    w("")
    w("## Targets of issue 16 (ratios from this run)")
    w("")
    w("| target | needed | measured | met |")
    w("|---|---|---|---|")
    for b in ("file", "http", "s3", "cache"):
        v = slope.get(("gw", b))
        if v:
            n = statistics.median(v)
            w("| memory per active transfer, %s (windowsize 16) | ≤ %.1f KiB | %.1f KiB | %s |" % (
                b, SLOPE_TARGET_KIB, n, "yes" if n <= SLOPE_TARGET_KIB else "**no**"))
    sd = storm_stats(res, "dnsmasq")
    for s, mode in (("gw-file", "per-port"), ("gw-sp", "single-port")):
        sg = storm_stats(res, s)
        if sg["nruns"] == 0:
            continue
        r = ratio(sg["cpugb"], sd["cpugb"])
        w("| storm server CPU per GB vs dnsmasq, %s | ≤ 0.67× | %s | %s |" % (
            mode, "n/a" if r is None else "%.2f× (%s vs %s s)" % (r, fmt(sg["cpugb"], 2), fmt(sd["cpugb"], 2)),
            "–" if r is None else ("yes" if r <= 0.67 else "**no**")))
        r = ratio(sg["agg"], sd["agg"])
        w("| storm aggregate vs dnsmasq, %s | ≥ 1.5× | %s | %s |" % (
            mode, "n/a" if r is None else "%.2f× (%s vs %s MB/s)" % (r, fmt(sg["agg"]), fmt(sd["agg"])),
            "–" if r is None else ("yes" if r >= 1.5 else "**no**")))
    s1, s2 = storm_stats(res, "gw-file"), storm_stats(res, "gw-w2")
    if s2["nruns"]:
        r = ratio(s2["cpugb"], s1["cpugb"])
        w("| storm server CPU per GB, 2 workers on 2 CPUs vs 1 worker on 1 | ≤ 1.10× | %s | %s |" % (
            "n/a" if r is None else "%.2f× (%s vs %s s)" % (r, fmt(s2["cpugb"], 2), fmt(s1["cpugb"], 2)),
            "–" if r is None else ("yes" if r <= 1.10 else "**no**")))
        r = ratio(s2["agg"], s1["agg"])
        w("| storm aggregate, 2 workers vs 1 (the load generator shares a CPU with them) | – | %s | – |" % (
            "n/a" if r is None else "%.2f× (%s vs %s MB/s)" % (r, fmt(s2["agg"]), fmt(s1["agg"]))))
    c1, c2 = storm_stats(res, "gw-cache"), storm_stats(res, "gw-cache-w2")
    if c1["nruns"] and c2["nruns"]:
        r = ratio(c2["cpugb"], c1["cpugb"])
        w("| storm from a warm cache, CPU per GB, 2 workers vs 1 (worker 1 reads copies in place) | – | %s | – |" % (
            "n/a" if r is None else "%.2f× (%s vs %s s)" % (r, fmt(c2["cpugb"], 2), fmt(c1["cpugb"], 2))))
        r = ratio(c2["agg"], c1["agg"])
        w("| storm from a warm cache, aggregate, 2 workers vs 1 | – | %s | – |" % (
            "n/a" if r is None else "%.2f× (%s vs %s MB/s)" % (r, fmt(c2["agg"]), fmt(c1["agg"]))))
    if s1["nruns"] and s1["agg"]:
        w("")
        w("**What N workers give on a machine with N cores to spare** (reasoned from the "
          "one-worker figures above, not measured: this machine has %s cores and the load "
          "generator takes one). A worker's data path shares nothing with the others: its own "
          "sockets, sessions, backend instances and metric slots; what is global (the session "
          "count, the rate tables) is touched once per request, not per block. So each worker "
          "adds what one worker does on one core, %s MB/s of lock-step storm at %s CPU seconds "
          "per GB here: about N × %s MB/s with N workers, until the network or the clients "
          "are the limit. The 2-worker rows above run with the load generator on one of "
          "the two CPUs, so they show contention, not scaling." % (
              res_meta.get("NPROC", "?"), fmt(s1["agg"]), fmt(s1["cpugb"], 2), fmt(s1["agg"])))
    w("")


def report(rundir, out_md, out_png):
    global res_meta
    meta = read_meta(os.path.join(rundir, "meta.env"))
    res_meta = meta
    res = Results(rundir)
    servers = res.servers()
    chart_err = write_chart(res, rundir, out_png)
    cmds = []
    cpath = os.path.join(rundir, "commands.txt")
    if os.path.exists(cpath):
        with open(cpath) as f:
            cmds = [line.rstrip("\n") for line in f if line.strip()]
    reps = res.reps()
    L = []
    w = L.append
    quick = meta.get("QUICK", "0") == "1"
    w("# tftpgw performance")
    w("")
    w("Written by `tests/bench/run.sh` (`make bench`) on %s from the raw results in "
      "`%s/raw.csv`; `bash tests/bench/run.sh --report %s` writes this page again "
      "from them." % (meta.get("DATE", "?"), meta.get("RUNDIR_REL", "build/bench/..."),
                      meta.get("RUNDIR_REL", "build/bench/...")))
    if quick:
        w("")
        w("**This is a QUICK=1 run** (one repetition, half the storm): a smoke test; "
          "its numbers are indicative only.")
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    w("| CPU | %s |" % meta.get("CPU_MODEL", "?"))
    w("| CPUs (`nproc`) | %s |" % meta.get("NPROC", "?"))
    w("| kernel | %s |" % meta.get("KERNEL", "?"))
    w("| OS | %s |" % meta.get("OS", "?"))
    w("| date | %s |" % meta.get("DATE", "?"))
    w("| load average (1, 5, 15 min) before / after the rounds | %s / %s |" % (
        meta.get("LOADAVG_START", "?"), meta.get("LOADAVG_END", "?")))
    w("| time spent measuring | %s s |" % meta.get("MEASURE_S", "?"))
    w("| tftpgw | commit %s%s, built with `%s` |" % (
        meta.get("GIT_REV", "?"), " (tree had local changes)" if meta.get("GIT_DIRTY") == "1" else "",
        meta.get("GW_CFLAGS", "make")))
    w("| peers | %s |" % meta.get("PEER_VERSIONS", "?"))
    w("| upstream for the http/cache backends | %s |" % meta.get("NGINX_VERSION", "?"))
    w("| load generator | `build/tftpload` (tests/bench) |")
    w("")
    try:
        busy = float(meta.get("LOADAVG_START", "0").split()[0])
    except ValueError:
        busy = 0.0
    if busy > 0.5:
        w("The machine was not idle when this run started (load average %.1f on %s CPUs): "
          "other work competed with the servers and the load generator, so absolute "
          "numbers are low and noisy. The rounds interleave the servers, so the ratios "
          "suffer less." % (busy, meta.get("NPROC", "?")))
    w("")
    w("## Method")
    w("")
    w("- Every server listens on loopback (127.0.0.1) on a free port; dnsmasq, which "
      "serves TFTP only on port 69, runs in a network namespace the benchmark "
      "creates, and its load generator runs in the same namespace.")
    w("- **CPU pinning:** every server runs with `taskset -c %s` (tftpd-hpa's per-transfer "
      "children inherit it), the load generator with `taskset -c %s`. nginx, the upstream "
      "of the http and cache backends, runs on CPU %s: it stands for a remote origin, "
      "so it does not take CPU time from the gateway (set NGINX_CPU=%s to charge it to "
      "the server's CPU)." % (meta.get("SERVER_CPU", "0"), meta.get("CLIENT_CPU", "1"),
                             meta.get("NGINX_CPU", "1"), meta.get("SERVER_CPU", "0")))
    w("- %d repetition%s; each repetition is one interleaved round: every scenario runs "
      "against every server once before the next repetition starts. Tables show the "
      "median over the repetitions. MB/s = 10^6 bytes per second of verified payload." %
      (reps, "" if reps == 1 else "s"))
    w("- Single transfers: one RRQ of one %s MiB random file. Lock-step rows send only "
      "`blksize`; windowed rows send `blksize` and `windowsize`. Every byte of every "
      "transfer is compared with the file; a run with any failed or wrong transfer is "
      "left out of the median and counted in the table." % meta.get("BIG_MIB", "?"))
    w("- Boot storm: %s RRQs of one %s MiB file, %s in flight, blksize 1468 with tsize and "
      "no windowsize (what PXE ROMs ask for). p50/p99 are per-transfer times from RRQ to "
      "last ACK." % (meta.get("STORM_COUNT", "?"), meta.get("STORM_MIB", "?"),
                     meta.get("STORM_CONC", "?")))
    iv = meta.get("RSS_SAMPLE_S", "0.05")
    w("- Server CPU is utime+stime of the server process (all its threads) from /proc, "
      "before and after the run. tftpd-hpa forks one child per transfer and ignores "
      "SIGCHLD, so its children are never waited for and their time never reaches the "
      "parent's cutime: their CPU is sampled from /proc every %s s instead (the last "
      "moments of each child may be missed). nginx's CPU is shown apart." % iv)
    w("- Peak RSS is the server's VmHWM, reset before each run (`echo 5 > "
      "/proc/PID/clear_refs`); for tftpd-hpa, whose transfers run in children, it is "
      "the largest sum of VmRSS over the listener and its children, sampled every "
      "%s s during the run (pages shared between them are counted once per process)." % iv)
    w("- The cache backend was warmed with one transfer of each file before the first "
      "measured run (ttl 1 day), so the measured runs are hits.")
    w("- Peers run as shipped by Debian 12, with only the limits a storm of up to 1000 clients "
      "needs raised: atftpd `--maxthread 2000` (default 100), dnsmasq `--tftp-max=2000` "
      "(default 50), and the open-file limit set to 65536.")
    w("")

    # negotiated options
    w("## What each server granted")
    w("")
    w("One probe RRQ per server, before the measured runs.")
    w("")
    w("| server | asked blksize 1468 + windowsize 64 | asked blksize 8192 |")
    w("|---|---|---|")
    for s in servers:
        a = res.granted(s, 1468, 64)
        b = res.granted(s, 8192, "")
        fa = ("blksize %s, windowsize %s" % (a["blksize"], a["windowsize"])) if a else "n/a"
        fb = ("blksize %s" % b["blksize"]) if b else "n/a"
        w("| %s | %s | %s |" % (LABEL.get(s, s), fa.replace(" -", " not granted"),
                                fb.replace(" -", " not granted")))
    w("")

    # single transfers
    w("## Single transfer, MB/s (median)")
    w("")
    w("| scenario | " + " | ".join(LABEL.get(s, s) for s in servers) + " |")
    w("|---" * (len(servers) + 1) + "|")
    for scen, title in SINGLE:
        if not any(res.runs(scen, s) for s in servers):
            continue
        w("| %s | " % title + " | ".join(single_cell(res, scen, s) for s in servers) + " |")
    w("")
    w("† the server ignores windowsize: the transfer ran lock-step.  ")
    w("‡ the server granted a smaller blksize than 8192 (see above).")
    w("")

    # storms
    def storm_table(scen, title, count, mib, conc):
        if not any(res.runs(scen, s) for s in servers):
            return
        w("## %s (median)" % title)
        w("")
        w("%s RRQs of one %s MiB file, %s in flight." % (count, mib, conc))
        w("")
        w("| server | aggregate MB/s | whole storm s | p50 s | p99 s | server CPU s per GB | "
          "peak RSS MiB | failed transfers |")
        w("|---|---|---|---|---|---|---|---|")
        for s in servers:
            st = storm_stats(res, s, scen)
            if st["nruns"] == 0:
                continue
            cpu = fmt(st["cpugb"], 2)
            if st["ups"] is not None:
                cpu += " (+ nginx %s)" % fmt(st["ups"], 2)
            rss = fmt(None if st["rss"] is None else st["rss"] / 1024.0, 1)
            if st["method"] == "sampled-sum":
                rss += " §"
            failed = str(st["failed"])
            if st["badruns"]:
                failed += " (%d of %d runs)" % (st["badruns"], st["nruns"])
            w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                LABEL.get(s, s), fmt(st["agg"]), fmt(st["wall"], 2), fmt(st["p50"], 2),
                fmt(st["p99"], 2), cpu, rss, failed))
        w("")
        w("§ sum of VmRSS over the listener and its per-transfer children, sampled.")
        w("")

    storm_table("storm", "Boot storm", meta.get("STORM_COUNT", "?"), meta.get("STORM_MIB", "?"),
                meta.get("STORM_CONC", "?"))
    storm_table("storm1000", "1000 concurrent clients", 1000, meta.get("STORM1000_MIB", "?"), 1000)

    # memory
    tgt = mem_target_kib(meta)
    w("## Memory with %s windowed transfers in flight" % meta.get("MEM_CLIENTS", "?"))
    w("")
    w("A freshly started tftpgw serves %s concurrent RRQs of one %s MiB file with "
      "windowsize %s and blksize %s. Target (issue 6): 8 MiB + %s × (%s × %s + 16 KiB) "
      "= %.1f MiB." % (meta.get("MEM_CLIENTS", "?"), meta.get("MEM_MIB", "?"),
                       meta.get("MEM_WINDOWSIZE", "?"), meta.get("MEM_BLKSIZE", "?"),
                       meta.get("MEM_CLIENTS", "?"), meta.get("MEM_WINDOWSIZE", "?"),
                       meta.get("MEM_BLKSIZE", "?"), tgt / 1024.0))
    w("")
    mem = {}
    if res.runs("mem", "gw-file") or res.runs("mem", "gw-http"):
        w("| backend | idle RSS MiB | peak RSS MiB | target MiB | peak / target | aggregate MB/s | failed transfers |")
        w("|---|---|---|---|---|---|---|")
    else:
        w("(not run)")
    for s in ("gw-file", "gw-http"):
        runs = res.runs("mem", s)
        if not runs:
            continue
        pk = res.med("mem", s, "peak_rss_kib")
        idle = res.med("mem", s, "idle_rss_kib")
        mem[s] = pk
        failed = sum(int(fnum(r, "transfers_failed") or 0) for r in runs)
        w("| %s | %s | %s | %.1f | %s | %s | %d |" % (
            LABEL[s].replace("tftpgw ", ""), fmt(None if idle is None else idle / 1024.0),
            fmt(None if pk is None else pk / 1024.0), tgt / 1024.0,
            fmt(ratio(pk, tgt), 2), fmt(res.med("mem", s, "aggregate_MBps")), failed))
    w("")

    slope_table(read_slope(rundir), meta, w)

    old_new_table(res, meta, w)

    # targets
    w("## Targets of issue 6 (ratios from this run)")
    w("")
    w("| target | needed | measured | met |")
    w("|---|---|---|---|")

    def m(scen, s):
        return res.med(scen, s, "aggregate_MBps")

    def row(name, need, val, ok, detail=""):
        if val is None:
            w("| %s | %s | n/a | – |" % (name, need))
        else:
            w("| %s | %s | %s%s | %s |" % (name, need, val, detail, "yes" if ok else "**no**"))

    gw = "gw-file"
    r = ratio(m("ws64", gw), m("ws8", "atftpd"))
    row("windowsize 64 vs atftpd at windowsize 8", "≥ 3×", r and "%.2f×" % r, r and r >= 3,
        " (%s vs %s MB/s)" % (fmt(m("ws64", gw)), fmt(m("ws8", "atftpd"))))
    r = ratio(m("ws64", gw), m("ws64", "atftpd"))
    row("windowsize 64 vs atftpd at windowsize 64", "≥ 2×", r and "%.2f×" % r, r and r >= 2,
        " (%s vs %s MB/s)" % (fmt(m("ws64", gw)), fmt(m("ws64", "atftpd"))))
    for scen, name in (("ls1468", "lock-step, blksize 1468"), ("ls8192", "lock-step, blksize 8192")):
        peers = [(m(scen, p), p) for p in PEERS if m(scen, p) is not None]
        best = max(peers) if peers else (None, None)
        r = ratio(m(scen, gw), best[0])
        row("%s vs the best peer" % name, "≥ 1×", r and "%.2f×" % r, r and r >= 1,
            " (%s vs %s %s MB/s)" % (fmt(m(scen, gw)), LABEL.get(best[1], "?"), fmt(best[0])))
    for scen, name in (("ws64", "windowsize 64"), ("ls1468", "lock-step 1468")):
        r = ratio(m(scen, "gw-http"), m(scen, gw))
        row("http backend vs file backend, %s" % name, "≥ 90%", r and "%.1f%%" % (100 * r),
            r and r >= 0.90, " (%s vs %s MB/s)" % (fmt(m(scen, "gw-http")), fmt(m(scen, gw))))
    for scen, name in (("ws64", "windowsize 64"), ("ls1468", "lock-step 1468")):
        r = ratio(m(scen, "gw-cache"), m(scen, gw))
        row("cache hit vs file backend, %s" % name, "≥ 95%", r and "%.1f%%" % (100 * r),
            r and r >= 0.95, " (%s vs %s MB/s)" % (fmt(m(scen, "gw-cache")), fmt(m(scen, gw))))
    sg, sd = storm_stats(res, gw), storm_stats(res, "dnsmasq")
    r = ratio(sg["agg"], sd["agg"])
    row("storm aggregate vs dnsmasq", "≥ 1.5×", r and "%.2f×" % r, r and r >= 1.5,
        " (%s vs %s MB/s)" % (fmt(sg["agg"]), fmt(sd["agg"])))
    ok = sg["p99"] is not None and sd["p99"] is not None and sg["p99"] <= sd["p99"]
    row("storm p99 vs dnsmasq", "≤", sg["p99"] is not None and sd["p99"] is not None and
        "%s s vs %s s" % (fmt(sg["p99"], 2), fmt(sd["p99"], 2)) or None, ok)
    ok = sg["cpugb"] is not None and sd["cpugb"] is not None and sg["cpugb"] <= sd["cpugb"]
    row("storm server CPU per GB vs dnsmasq", "≤", sg["cpugb"] is not None and sd["cpugb"] is not None
        and "%s s vs %s s" % (fmt(sg["cpugb"], 2), fmt(sd["cpugb"], 2)) or None, ok)
    k = res.runs("storm1000", gw)
    if k:
        failed = sum(int(fnum(r, "transfers_failed") or 0) for r in k)
        okn = sum(int(fnum(r, "transfers_ok") or 0) for r in k)
        row("1000 concurrent clients", "all complete", "%d of %d complete" % (okn, okn + failed),
            failed == 0 and all(r["rc"] == "0" for r in k))
    else:
        w("| 1000 concurrent clients | all complete | not run (SCENARIOS=storm1000 runs it) | – |")
    for s in ("gw-file", "gw-http"):
        pk = mem.get(s)
        row("peak RSS, %s backend, %s transfers" % (s[3:], meta.get("MEM_CLIENTS", "?")),
            "≤ %.1f MiB" % (tgt / 1024.0), pk is not None and "%.1f MiB" % (pk / 1024.0) or None,
            pk is not None and pk <= tgt)
    w("")

    issue16_targets(res, w)

    w("Where the time goes, and what each remaining target would need: "
      "[profile.md](profile.md) (perf and callgrind, with the changes it led to).")
    w("")

    # chart
    w("## Chart")
    w("")
    if chart_err:
        w("(no chart: %s)" % chart_err)
    else:
        w("![MB/s by windowsize per server, and boot-storm completion times](%s)" %
          os.path.basename(out_png))
    w("")

    # all repetitions
    w("## Every repetition")
    w("")
    w("MB/s of each repetition in order (`x` = the run failed).")
    w("")
    w("| scenario | " + " | ".join(LABEL.get(s, s) for s in servers) + " |")
    w("|---" * (len(servers) + 1) + "|")
    for scen, title in SINGLE + [("storm", "boot storm (aggregate)")]:
        if not any(res.runs(scen, s) for s in servers):
            continue
        cells = []
        for s in servers:
            runs = res.runs(scen, s)
            cells.append(" / ".join(fmt(fnum(r, "aggregate_MBps")) if r["rc"] == "0" else "x"
                                    for r in runs) or "–")
        w("| %s | %s |" % (title, " | ".join(cells)))
    w("")

    # commands
    w("## Commands")
    w("")
    w("```sh")
    w(meta.get("INVOCATION", "make bench"))
    w("```")
    w("")
    w("What the benchmark ran (WORK is its temporary directory, PORT a free port; "
      "`ip netns exec NS` for dnsmasq and its client):")
    w("")
    w("```")
    for c in cmds:
        w(c)
    w("```")
    inis = sorted(f for f in os.listdir(os.path.join(rundir, "logs")) if f.endswith(".ini")) \
        if os.path.isdir(os.path.join(rundir, "logs")) else []
    for ini in inis:
        if ini.startswith("mem-") and ini.replace("mem-", "gw-") in inis:
            continue
        w("")
        w("`%s`:" % ini)
        w("")
        w("```ini")
        with open(os.path.join(rundir, "logs", ini)) as f:
            w(f.read().rstrip("\n"))
        w("```")
    notes = meta.get("NOTES", "")
    if notes:
        w("")
        w("## Notes from this run")
        w("")
        for n in notes.split(" ;; "):
            if n.strip():
                w("- " + n.strip())
    w("")
    with open(out_md, "w") as f:
        f.write("\n".join(L))
    if chart_err:
        print("benchtool: %s" % chart_err, file=sys.stderr)
    return 0


def main(argv):
    if len(argv) >= 6 and argv[1] == "probe":
        return probe(argv[2], int(argv[3]), argv[4], int(argv[5]),
                     int(argv[6]) if len(argv) > 6 and argv[6] else None)
    if len(argv) == 4 and argv[1] == "tree-sample":
        return tree_sample(int(argv[2]), float(argv[3]))
    if len(argv) == 5 and argv[1] == "report":
        return report(argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
