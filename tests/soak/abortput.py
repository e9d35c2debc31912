#!/usr/bin/env python3
"""abortput.py - an upload the client gives up on halfway, for the soak.

  abortput.py HOST PORT LOCAL REMOTE --after K --how error|silent
              [-o name=value ...] [--timeout S] [--retries N]

Sends LOCAL as REMOTE with tests/integration/tftpraw.py's client and stops
once block K is ACKed (K is below the last block, so the server never sees
the end of the data): `error` sends ERROR 0 to the server's TID, `silent`
just closes the socket and lets the server time out. Either way the upload
must leave nothing behind; the soak checks that.

Exit status: 0 when the abort happened as planned, 1 when the transfer ended
otherwise (an ERROR, a timeout or a violation before block K).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import tftpraw as T  # noqa: E402


class Abandon(Exception):
    pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("local")
    ap.add_argument("remote")
    ap.add_argument("--after", type=int, required=True)
    ap.add_argument("--how", choices=("error", "silent"), required=True)
    ap.add_argument("-o", "--option", action="append", help="name=value")
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--retries", type=int, default=5)
    a = ap.parse_args(argv)
    opts = [tuple(o.split("=", 1)) for o in a.option or []] or None
    with open(a.local, "rb") as f:
        data = f.read()

    def hook(client, res, block):
        if block >= a.after:
            if a.how == "error":
                client.send_raw(T.build_error(0, "soak: upload abandoned"), res.server)
            raise Abandon(block)

    try:
        with T.Client(a.host, a.port, a.timeout, a.retries) as c:
            r = c.put(a.remote, data, "octet", opts, hook=hook)
    except Abandon as e:
        print("abandoned after block %s (%s)" % (e.args[0], a.how))
        return 0
    except T.TftpError as e:
        print("error %d %s" % (e.code, e.msg))
        return 1
    except (T.Timeout, T.ProtocolViolation) as e:
        print("%s: %s" % (type(e).__name__.lower(), e))
        return 1
    print("completed %d bytes: the abort point was never reached" % len(r.data))
    return 1


if __name__ == "__main__":
    sys.exit(main())
