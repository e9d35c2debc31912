#!/usr/bin/env python3
"""badhttp - a small misbehaving HTTP/1.1 server for tftpgw's HTTP backend
tests (stdlib only, one thread per connection, loopback only).

  badhttp.py serve [--host 127.0.0.1] [--port 0] [--log FILE]
  badhttp.py gen N            N deterministic bytes on stdout (see data())

"serve" prints "PORT n" once listening. The behaviour is chosen by the URL
path (the part after the last "/_/" if there is one, so a route prefix can be
put in front: /c/_/put-409 acts as /put-409):

  GET/HEAD
    /NNN                 status NNN (404, 403, 500, ...) with a short body
    /data/N              200, Content-Length N, data(N)
    /chunked/N           200, Transfer-Encoding: chunked, data(N), no length
    /reset               Content-Length 1 MiB, 100 KiB of body, then RST
                         (SO_LINGER 0 + close)
    /stall               Content-Length 1 MiB, 64 KiB of body, then nothing
                         until the client goes away (at most --hang seconds)
    /drip/N              Content-Length N (N <= 600), one byte every 100 ms
    /cut/N               Content-Length 1 MiB, data(N), then a clean close
                         (FIN): the body ends short
    /chunked-500/N       chunked, data(N) in chunks, then an HTTP/1.1 500
                         status line where the next chunk size belongs (a
                         server that gave up mid-body), then a clean close
    /close/N             200 with neither Content-Length nor chunked
                         (Connection: close), data(N), then a clean close
                         (FIN): a whole body whose end nothing proves
    /close-reset/N       the same, but RST after data(N): cut short
    /endless             200, chunked, data without end (stops after
                         --hang seconds or 4 GiB, or when the client goes)
    /redirect/N/REST     302 to /redirect/N-1/REST; /redirect/0/REST is REST
    /echo-headers[/...]  200, the request line and headers as the body
    /exists              200 (HEAD: Content-Length 5, no body)
    anything else        404
  PUT (the body is always read first, Content-Length or chunked)
    /put-NNN             answer NNN after reading the body
    /put-early-NNN       answer NNN at once without reading the body, then
                         close the connection
    /put-slow-NNN        read the body, wait 2 s, answer NNN
    /put-NNN-after/N     read N bytes of the body, answer NNN at once and
                         close without reading the rest
    /put-reset-after/N   read N bytes of the body, then RST
    /put-stall-after/N   read N bytes of the body, then neither read nor
                         answer until the client goes away (--hang at most)
    /put-hang            read the whole body, then never answer (--hang)
    anything else        201
  HEAD of a /put-... path answers 404 (the object does not exist yet).

Every request is appended to --log as one JSON object per line: method,
target (raw, as sent), headers, and for PUT: body_len, sha256, chunked,
complete (the whole body arrived).
"""

import argparse
import hashlib
import json
import re
import select
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_LOCK = threading.Lock()
LOG_FILE = None
HANG_MAX = 60.0


def data(n):
    """n deterministic bytes: SHA-256 in counter mode (hard to confuse with
    anything else, cheap to rebuild in a test)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"badhttp-%d" % i).digest()
        i += 1
    return bytes(out[:n])


def log_request(rec):
    if not LOG_FILE:
        return
    line = json.dumps(rec, sort_keys=True) + "\n"
    with LOG_LOCK:
        with open(LOG_FILE, "a") as f:
            f.write(line)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "badhttp/1"

    def log_message(self, fmt, *args):  # quiet: the JSON log says it all
        pass

    # -- helpers

    def cmd_path(self):
        path = self.path.split("?", 1)[0]
        if "/_/" in path:
            path = "/" + path.rsplit("/_/", 1)[1]
        return path

    def record(self, **extra):
        rec = {"method": self.command, "target": self.path,
               "headers": [[k, v] for k, v in self.headers.items()],
               "t": time.time()}
        rec.update(extra)
        log_request(rec)

    def send_body(self, code, body, ctype="application/octet-stream", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def status(self, code):
        self.send_body(code, b"badhttp status %d\n" % code, "text/plain")

    def hang(self, read=True):
        """Send nothing more until the peer closes or HANG_MAX passes. With
        read=False the rest of a request body is left unread too (the
        sender's window closes), and only the peer's FIN or RST is watched."""
        end = time.monotonic() + HANG_MAX
        sock = self.connection
        if not read:
            po = select.poll()
            po.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
            while time.monotonic() < end:
                if po.poll(100):
                    break
            self.close_connection = True
            return
        while time.monotonic() < end:
            r, _, _ = select.select([sock], [], [], 0.1)
            if r:
                try:
                    if not sock.recv(4096):
                        break
                except OSError:
                    break
        self.close_connection = True

    def rst(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def read_body(self, limit=None):
        """(bytes, chunked, complete) of the request body; with limit, stop
        once that many bytes are in (complete is then False)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        parts = []
        if "chunked" in te:
            got = 0
            try:
                while True:
                    if limit is not None and got >= limit:
                        return b"".join(parts), True, False
                    line = self.rfile.readline(1024)
                    if not line:
                        return b"".join(parts), True, False
                    size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                    if size == 0:
                        while True:      # trailers up to the empty line
                            t = self.rfile.readline(1024)
                            if not t:
                                return b"".join(parts), True, False
                            if t in (b"\r\n", b"\n"):
                                return b"".join(parts), True, True
                    chunk = self.rfile.read(size)
                    parts.append(chunk)
                    got += len(chunk)
                    if len(chunk) < size or self.rfile.readline(8) not in (b"\r\n", b"\n"):
                        return b"".join(parts), True, False
            except (OSError, ValueError):
                return b"".join(parts), True, False
        n = int(self.headers.get("Content-Length") or 0)
        want = n if limit is None else min(n, limit)
        got = 0
        try:
            while got < want:
                chunk = self.rfile.read(min(65536, want - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
        except OSError:
            pass
        return b"".join(parts), False, got == n

    # -- methods

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        p = self.cmd_path()
        self.record()
        m = re.fullmatch(r"/(\d{3})", p)
        if m:
            return self.status(int(m.group(1)))
        m = re.fullmatch(r"/data/(\d+)", p)
        if m:
            return self.send_body(200, data(int(m.group(1))))
        m = re.fullmatch(r"/chunked/(\d+)", p)
        if m:
            body = data(int(m.group(1)))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command == "HEAD":
                return None
            sizes = (1000, 7, 4096, 1, 65536, 333)
            i = k = 0
            while i < len(body):
                c = body[i:i + sizes[k % len(sizes)]]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                i += len(c)
                k += 1
            self.wfile.write(b"0\r\n\r\n")
            return None
        if p in ("/reset", "/stall"):
            total = 1 << 20
            sent = (100 << 10) if p == "/reset" else (64 << 10)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            if self.command == "HEAD":
                return None
            self.wfile.write(data(sent))
            self.wfile.flush()
            time.sleep(0.3)       # let the bytes leave before the RST
            return self.rst() if p == "/reset" else self.hang()
        m = re.fullmatch(r"/cut/(\d+)", p)
        if m:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            if self.command == "HEAD":
                return None
            self.wfile.write(data(min(int(m.group(1)), (1 << 20) - 1)))
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.close_connection = True
            return None
        m = re.fullmatch(r"/chunked-500/(\d+)", p)
        if m:
            body = data(int(m.group(1)))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command == "HEAD":
                return None
            for i in range(0, len(body), 8192):
                c = body[i:i + 8192]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
            self.wfile.write(b"HTTP/1.1 500 Internal Server Error\r\n"
                             b"Content-Length: 0\r\n\r\n")
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.close_connection = True
            return None
        m = re.fullmatch(r"/close(-reset)?/(\d+)", p)
        if m:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return None
            self.wfile.write(data(int(m.group(2))))
            self.wfile.flush()
            if m.group(1):
                time.sleep(0.3)       # let the bytes leave before the RST
                return self.rst()
            self.connection.shutdown(socket.SHUT_WR)
            return None
        if p == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command == "HEAD":
                return None
            chunk = data(65536)
            end = time.monotonic() + HANG_MAX
            sent = 0
            try:
                while time.monotonic() < end and sent < (4 << 30):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except OSError:
                pass
            self.close_connection = True
            return None
        m = re.fullmatch(r"/drip/(\d+)", p)
        if m:
            n = min(int(m.group(1)), 600)
            body = data(n)
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return None
            for i in range(n):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.1)
            return None
        m = re.fullmatch(r"/redirect/(\d+)/(.*)", p)
        if m:
            n, rest = int(m.group(1)), m.group(2)
            if n > 0:
                loc = "/redirect/%d/%s" % (n - 1, rest)
                return self.send_body(302, b"moved\n", "text/plain", [("Location", loc)])
            self.path = "/" + rest
            return self.do_GET()
        if p == "/echo-headers" or p.startswith("/echo-headers/"):
            body = ("%s\r\n" % self.requestline).encode("latin-1")
            for k, v in self.headers.items():
                body += ("%s: %s\r\n" % (k, v)).encode("latin-1")
            return self.send_body(200, body, "text/plain")
        if p == "/exists":
            return self.send_body(200, b"here\n", "text/plain")
        if p.startswith("/put-"):
            return self.status(404)
        return self.status(404)

    def do_PUT(self):
        p = self.cmd_path()
        m = re.fullmatch(r"/put-early-(\d{3})", p)
        if m:
            self.record(body_len=None, complete=False)
            self.close_connection = True
            return self.send_body(int(m.group(1)), b"early\n", "text/plain",
                                  [("Connection", "close")])
        m = re.fullmatch(r"/put-(\d{3}|reset|stall)-after/(\d+)", p)
        if m:
            body, chunked, complete = self.read_body(int(m.group(2)))
            self.record(body_len=len(body), chunked=chunked, complete=complete,
                        action=m.group(1))
            self.close_connection = True
            if m.group(1) == "reset":
                return self.rst()
            if m.group(1) == "stall":
                return self.hang(read=False)
            return self.send_body(int(m.group(1)), b"failed mid-body\n", "text/plain",
                                  [("Connection", "close")])
        body, chunked, complete = self.read_body()
        self.record(body_len=len(body), sha256=hashlib.sha256(body).hexdigest(),
                    chunked=chunked, complete=complete)
        if p == "/put-hang" and complete:
            return self.hang()
        if not complete:
            self.close_connection = True
            return None
        m = re.fullmatch(r"/put-slow-(\d{3})", p)
        if m:
            time.sleep(2.0)
            return self.status(int(m.group(1)))
        m = re.fullmatch(r"/put-(\d{3})", p)
        if m:
            return self.status(int(m.group(1)))
        return self.status(201)

    def do_DELETE(self):
        self.record()
        self.status(405)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    global LOG_FILE, HANG_MAX
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--log")
    s.add_argument("--hang", type=float, default=60.0,
                   help="longest a /stall connection is held (s)")
    s.add_argument("--lifetime", type=float, default=900.0,
                   help="exit after this many seconds whatever happens")
    g = sub.add_parser("gen")
    g.add_argument("n", type=int)
    a = ap.parse_args(argv)
    if a.cmd == "gen":
        sys.stdout.buffer.write(data(a.n))
        return 0
    LOG_FILE, HANG_MAX = a.log, a.hang
    srv = Server((a.host, a.port), Handler)
    print("PORT %d" % srv.server_address[1], flush=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    # bounded: a forgotten server never outlives a test run by much
    time.sleep(a.lifetime)
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
