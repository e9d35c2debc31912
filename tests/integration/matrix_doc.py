#!/usr/bin/env python3
"""tests/integration/matrix_doc.py - docs/compatibility.md from the results
matrix.sh writes ($WORK/matrix.tsv).

    matrix_doc.py --results TSV --expect "file http s3 cache" --rows "ROW..."
                  --partial-out FILE [--out FILE] [--s3rver VERSION]
                  [--gateway VERSION] [--date YYYY-MM-DD]

One TSV line per cell: backend, port mode, row id, row label, op, transfer
mode, result (PASS, FAIL, XFAIL, n.a.), note (a note key for n.a., the reason for a
FAIL), milliseconds, and for windowed uploads what the client's trace
counted ("data=N acks=M"). The document is written to --out only when the run was
complete: every --expect backend present with every --rows row in every
column for both port modes. Otherwise (or without --out) it goes to --partial-out.

Exit status: 0 written (to --out when given), 3 incomplete (written to
--partial-out only), 2 bad input.
"""
import argparse
import datetime
import subprocess
import sys

PMODES = ("per-port", "single-port")
COLUMNS = [(op, xm, pm) for op in ("get", "put") for xm in ("octet", "netascii") for pm in PMODES]

PACKAGES = ("tftp-hpa", "atftp", "curl", "busybox", "nginx", "nginx-light", "nginx-core",
            "awscli", "nodejs", "ipxe-qemu", "qemu-system-x86")

NOTES = {
    "busybox-octet": "busybox tftp has no mode switch: it always requests octet.",
    "atftp-netascii-rewind":
        "A client bug, not counted as a failure of the test: atftp 0.8 cannot go back "
        "inside a window of a netascii upload. Told to resend from a block before the "
        "window's last (an ACK of that block, RFC 7440 4), it sends DATA of \"size -1\" "
        "(its --trace) and times out. " + "{DROPS}",
    "atftp-past-end":
        "A client bug, not counted as a failure of the test: after going back inside a "
        "window (an ACK of a block before the window's last, RFC 7440 4), atftp 0.8 "
        "loses track of the end of the file: the gateway ACKed the short final DATA and "
        "stored the file, and atftp then sends DATA of the block after it, size 0 (its "
        "--trace), and gives up with an error. " + "{DROPS}",
    "curl-netascii": "curl sends mode netascii (`;mode=netascii` in the URL) but converts no "
                     "line ends. The get must receive the netascii form of the text (CR LF, "
                     "CR NUL) byte for byte; the put sends that form and the stored object "
                     "must be the text.",
    "ipxe-e2e": "Not a result of this run: covered by `make e2e` (QEMU with Debian's iPXE "
                "ROM, which asks for blksize 1432 and tsize; boot.ipxe through the http "
                "backend, kernel and initrd through the cache), see docs/e2e.md. "
                "tests/e2e/run.sh writes no machine-readable result to take the cell from.",
    "ipxe-read": "iPXE only reads.",
    "ipxe-octet": "iPXE requests octet only.",
    "ipxe-single": "`make e2e` runs the gateway in per-port mode only.",
    "ipxe-backend": "`make e2e` has no route on this backend.",
}

# Why atftp is told to go back at all: only the single-port mode drops DATA.
DROPS = ("The gateway makes clients go back in single-port mode whenever DATA arrives "
         "while the store is busy: it drops that DATA there (gateway/session.c, "
         "tg_session_input), where per-port mode leaves it queued in the transfer's own "
         "socket. So the cell fails in some runs and passes in others. With atftp in "
         "single-port mode, upload with windowsize 1.")
for _k in ("atftp-netascii-rewind", "atftp-past-end"):
    NOTES[_k] = NOTES[_k].replace("{DROPS}", DROPS)

BACKEND_TEXT = {
    "file": "The `file` backend: the gateway's own directory. Puts are read back "
            "from that directory.",
    "http": "The `http` backend in front of nginx (WebDAV PUT). Puts are read back "
            "from nginx's document root.",
    "s3": "The `s3` backend against @20minutes/s3rver (checks SigV4). Puts are read "
          "back with awscli (`aws s3 cp`).",
    "cache": "The `cache` backend in front of nginx. Each get cell reads an object not "
             "cached yet (a miss, served while it fills) and then again (a hit); both "
             "must be right. Uploads through a cache route go to the upstream "
             "(etc/tftpgw.ini), so puts are read back from nginx's document root.",
}


def load(path):
    cells = {}
    rows = {}        # backend -> [(row id, label)] in first-seen order
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if not line:
            continue
        f = line.split("\t")
        if len(f) != 10:
            raise ValueError("%s:%d: %d fields, want 10" % (path, n, len(f)))
        be, pm, row, label, op, xm, res, note, ms, stats = f
        if res not in ("PASS", "FAIL", "XFAIL", "n.a.") or pm not in PMODES:
            raise ValueError("%s:%d: bad result or port mode" % (path, n))
        cells[(be, row, op, xm, pm)] = (res, note, int(ms) if ms else 0, stats)
        seen = rows.setdefault(be, [])
        if row not in [r for r, _ in seen]:
            seen.append((row, label))
    return cells, rows


def missing_cells(cells, rows, expect, want_rows):
    miss = []
    for be in expect:
        if be not in rows:
            miss.append("%s (not run)" % be)
            continue
        for row in want_rows:
            for op, xm, pm in COLUMNS:
                if (be, row, op, xm, pm) not in cells:
                    miss.append("/".join((be, pm, row, op, xm)))
    return miss


def versions():
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Status}\n"]
                             + list(PACKAGES), capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    got = []
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) == 3 and f[1] and "installed" in f[2].split():
            got.append((f[0], f[1]))
    return got


class Notes:
    """Numbered notes of one table: the same text gets the same number."""

    def __init__(self):
        self.texts = []

    def ref(self, text):
        if text not in self.texts:
            self.texts.append(text)
        return "[%d]" % (self.texts.index(text) + 1)


def cell_text(cells, notes, be, row, op, xm, pm):
    c = cells.get((be, row, op, xm, pm))
    if c is None:
        return "not run"
    res, note = c[0], c[1]
    if res == "n.a.":
        return "n.a. " + notes.ref(NOTES.get(note, note))
    if res == "FAIL":
        return "**FAIL** " + notes.ref("FAIL %s: %s" % ("/".join((pm, op, xm)), note))
    if res == "XFAIL":
        return "FAIL (client bug) " + notes.ref(NOTES.get(note, note))
    if xm == "netascii" and row.startswith("curl"):
        return "PASS " + notes.ref(NOTES["curl-netascii"])
    return "PASS"


def ipxe_cell(notes, be, op, xm, pm):
    if op == "put":
        return "n.a. " + notes.ref(NOTES["ipxe-read"])
    if xm == "netascii":
        return "n.a. " + notes.ref(NOTES["ipxe-octet"])
    if be not in ("http", "cache"):
        return "— " + notes.ref(NOTES["ipxe-backend"])
    if pm == "single-port":
        return "— " + notes.ref(NOTES["ipxe-single"])
    return "make e2e " + notes.ref(NOTES["ipxe-e2e"])


def windowed(cells, rows, expect, w):
    """What the windowed uploads cost the client, from its trace."""
    got = [(k, c[3], c[0]) for k, c in cells.items() if c[3] and k[2] == "put"]
    if not got:
        return
    label = {}
    for be in rows:
        label.update(dict(rows[be]))
    w("")
    w("## Windowed uploads")
    w("")
    w("DATA the client sent and ACKs it received in the windowed upload cells, from its")
    w("`--trace` (%s). Without loss, the octet upload of 200 000 bytes"
      % ", ".join(sorted({label.get(k[1], k[1]) for k, _, _ in got})))
    w("at blksize 1468 sends 137 DATA and gets one ACK per window of 16: 9. Anything above is")
    w("blocks sent again after the gateway asked for them again (an ACK inside a window).")
    w("")
    w("| backend | port mode | transfer mode | DATA sent | ACKs received | cell |")
    w("|---|---|---|---|---|---|")
    for be in expect:
        for pm in PMODES:
            for xm in ("octet", "netascii"):
                for (kbe, row, op, kxm, kpm), stats, res in sorted(got):
                    if (kbe, kxm, kpm) != (be, xm, pm):
                        continue
                    f = dict(p.split("=", 1) for p in stats.split() if "=" in p)
                    shown = "FAIL (client bug)" if res == "XFAIL" else res
                    w("| %s | %s | %s | %s | %s | %s |" % (be, pm, xm, f.get("data", "?"),
                                                         f.get("acks", "?"), shown))


def render(cells, rows, expect, args, complete, miss):
    out = []
    w = out.append
    w("# Client compatibility")
    w("")
    w("Generated by `tests/integration/matrix_doc.py` from the results of the `matrix_clients_*`")
    w("tests (`tests/integration/matrix.sh`) on %s, %s. Do not edit by hand:"
      % (args.date, args.gateway or "tftpgw"))
    w("`bash tests/integration/run.sh matrix_clients matrix_doc` (or the whole suite) rewrites it.")
    w("The copy in the source tree is rewritten only by a run in which every cell below was")
    w("attempted (all four backends, both port modes); a run with a narrower name filter leaves")
    w("it alone, and `MATRIX_DOC=0` turns the rewrite off.")
    if not complete:
        w("")
        w("**Partial run: %d cells were not attempted** (%s)." % (len(miss), ", ".join(miss[:8])
                                                                   + (", ..." if len(miss) > 8 else "")))
    w("")
    w("Each cell is a real transfer on loopback through a gateway started for that backend and")
    w("port mode. *get*: the client fetches 200 000 random bytes (octet) or about 150 kB of text")
    w("with LF and CR LF line ends and bare CRs (netascii), and the sha256 of what it received must")
    w("be the original's. *put*: the client uploads the same data and the object the backend")
    w("stored, read back from the backend itself, must be the original. In every cell the")
    w("gateway's summary line must also say `result=ok` with the transfer mode, blksize and")
    w("windowsize the row asks for, so an option dropped on the way is a FAIL. *per-port*: each")
    w("transfer on its own ephemeral port (RFC 1350 TIDs, the default); *single-port*:")
    w("`single_port = yes` in `[server]`, every transfer on the listening port.")
    w("")
    w("Cells: PASS; **FAIL** (the test fails); FAIL (client bug): the client's own bug, explained")
    w("in the note, which does not fail the test; n.a.: the client cannot do it; make e2e: covered")
    w("by the separate QEMU boot test, not by this run; —: not covered anywhere.")
    w("")
    totals = {"PASS": 0, "FAIL": 0, "XFAIL": 0, "n.a.": 0}
    for c in cells.values():
        totals[c[0]] += 1
    w("Totals: %d PASS, %d FAIL, %d FAIL (client bug), %d n.a. (iPXE rows not counted)."
      % (totals["PASS"], totals["FAIL"], totals["XFAIL"], totals["n.a."]))
    head = "| client (options) | " + " | ".join("%s %s<br>%s" % c for c in COLUMNS) + " |"
    sep = "|---|" + "---|" * len(COLUMNS)
    all_rows = []
    for be in rows:
        for r in rows[be]:
            if r not in all_rows:
                all_rows.append(r)
    for be in expect:
        w("")
        w("## %s" % be)
        w("")
        w(BACKEND_TEXT.get(be, ""))
        w("")
        if be not in rows:
            w("Not run in this run.")
            continue
        mine = [c for k, c in cells.items() if k[0] == be]
        n = {k: sum(1 for c in mine if c[0] == k) for k in totals}
        w("%d cells: %d PASS, %d FAIL, %d FAIL (client bug), %d n.a.; %.1f s of transfers." %
          (len(mine), n["PASS"], n["FAIL"], n["XFAIL"], n["n.a."], sum(c[2] for c in mine) / 1000.0))
        w("")
        notes = Notes()
        w(head)
        w(sep)
        for row, label in all_rows:
            w("| %s | %s |" % (label, " | ".join(cell_text(cells, notes, be, row, *c) for c in COLUMNS)))
        w("| iPXE (QEMU, `make e2e`) | %s |" % " | ".join(ipxe_cell(notes, be, *c) for c in COLUMNS))
        w("")
        for i, t in enumerate(notes.texts, 1):
            w("[%d] %s  " % (i, t))
    windowed(cells, rows, expect, w)
    w("")
    w("## Versions")
    w("")
    w("Debian packages (`dpkg-query -W`) on the machine that ran the matrix:")
    w("")
    w("| package | version |")
    w("|---|---|")
    for p, v in versions():
        w("| %s | %s |" % (p, v))
    if args.s3rver:
        w("| @20minutes/s3rver (npm) | %s |" % args.s3rver)
    w("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--expect", required=True, help="backends, space separated")
    ap.add_argument("--rows", required=True, help="row ids, space separated")
    ap.add_argument("--out")
    ap.add_argument("--partial-out", required=True)
    ap.add_argument("--s3rver", default="")
    ap.add_argument("--gateway", default="")
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    args = ap.parse_args()
    try:
        cells, rows = load(args.results)
    except (OSError, ValueError) as e:
        print("matrix_doc: %s" % e, file=sys.stderr)
        return 2
    expect = args.expect.split()
    miss = missing_cells(cells, rows, expect, args.rows.split())
    complete = not miss
    text = render(cells, rows, expect, args, complete, miss)
    dest = args.out if complete and args.out else args.partial_out
    with open(dest, "w", encoding="utf-8") as f:
        f.write(text)
    fails = sum(1 for c in cells.values() if c[0] == "FAIL")
    print("matrix_doc: %d cells (%d FAIL) -> %s" % (len(cells), fails, dest))
    if not complete:
        print("matrix_doc: not attempted: %s%s; the source tree's copy is left as is"
              % (", ".join(miss[:4]), " and %d more" % (len(miss) - 4) if len(miss) > 4 else ""))
        return 3
    if not args.out:
        print("matrix_doc: MATRIX_DOC=0, the source tree's copy is left as is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
