#!/bin/sh
# Run each cmocka binary; fail if any fails.
rc=0
for t in "$@"; do
    echo "== $t"
    "$t" || rc=1
done
exit $rc
