#!/usr/bin/env python3
"""Check the metric names of etc/grafana/tftpgw.json (tests/integration/dashboards.sh).

  dashboard_names.py check DASHBOARD RULES METRICS
      every tftpgw name in the dashboard's queries is served by the gateway
      (METRICS: a scrape of its /metrics) or recorded by a rule in RULES;
      prints the names checked, exits 1 naming those that are neither
  dashboard_names.py exprs DASHBOARD
      every query, Grafana's variables replaced, one JSON string a line
      (for Prometheus's query API)
"""
import json
import re
import sys

IDENT = re.compile(r'[A-Za-z_:][A-Za-z0-9_:]*')


def queries(dash):
    """Every PromQL text of the dashboard: panel targets and variable queries."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get('targets', []):
                if t.get('expr'):
                    out.append(t['expr'])
            walk(p.get('panels', []))

    walk(dash.get('panels', []))
    for v in dash.get('templating', {}).get('list', []):
        q = v.get('query')
        if isinstance(q, dict):
            q = q.get('query')
        if v.get('type') == 'query' and q:
            out.append(q)
    return out


def names(expr):
    """Metric names in a PromQL text: strings, label matchers and ranges
    removed, then the identifiers that name a tftpgw series."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    s = re.sub(r'\{[^{}]*\}', ' ', s)
    s = re.sub(r'\[[^\]]*\]', ' ', s)
    return {m for m in IDENT.findall(s) if 'tftpgw_' in m}


def served(path):
    """Names the scrape serves: families from TYPE lines (with a histogram's
    _bucket, _sum and _count) and every sample's name."""
    have = set()
    for line in open(path, encoding='utf-8'):
        if line.startswith('# TYPE '):
            _, _, fam, typ = line.split()
            have.add(fam)
            if typ == 'histogram':
                have.update(fam + x for x in ('_bucket', '_sum', '_count'))
        elif line and not line.startswith('#'):
            have.add(re.split(r'[{ ]', line, 1)[0])
    return have


def recorded(path):
    return set(re.findall(r'^\s*-?\s*record:\s*(\S+)\s*$', open(path, encoding='utf-8').read(), re.M))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == 'exprs':
        dash = json.load(open(sys.argv[2], encoding='utf-8'))
        for q in queries(dash):
            q = q.replace('$__rate_interval', '1m').replace('$instance', '.*')
            q = re.sub(r'^label_values\((\w+), *\w+\)$', r'\1', q)
            print(json.dumps(q))
        return 0
    if len(sys.argv) != 5 or sys.argv[1] != 'check':
        print(__doc__, file=sys.stderr)
        return 2
    dash = json.load(open(sys.argv[2], encoding='utf-8'))
    rules, have = recorded(sys.argv[3]), served(sys.argv[4])
    used, bad = set(), []
    for q in queries(dash):
        for n in names(q):
            used.add(n)
            ok = n in rules if ':' in n else n in have
            if not ok:
                bad.append('%s (in %s)' % (n, q))
    if not used:
        print('no tftpgw names found in the dashboard')
        return 1
    if bad:
        print('not served and not recorded: ' + '; '.join(sorted(set(bad))))
        return 1
    print(' '.join(sorted(used)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
