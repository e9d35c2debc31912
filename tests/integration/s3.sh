# tests/integration/s3.sh - the S3 backend against a signature-checking S3
# server (sourced by run.sh after lib.sh; bash).
#
# To run these tests, add to run.sh, after the line that sources http.sh and
# before `summary` (the fixtures they need must exist, so after
# make_fixtures):
#
#   # the S3 backend against @20minutes/s3rver and awscli
#   . "$HERE/s3.sh"
#   run_test s3_get_small          sx t_s3_get_small
#   run_test s3_get_50M            sx t_s3_get_50M
#   run_test s3_put_tsize          sx t_s3_put_tsize
#   run_test s3_put_multipart_30M  sx t_s3_put_multipart_30M
#   run_test s3_put_notsize_1k     sx t_s3_put_notsize_1k
#   run_test s3_wrong_secret       sx t_s3_wrong_secret
#   run_test s3_missing_key        sx t_s3_missing_key
#   run_test s3_missing_bucket     sx t_s3_missing_bucket
#   run_test s3_key_chars          sx t_s3_key_chars
#   run_test s3_prefix             sx t_s3_prefix
#   run_test s3_create_exists      sx t_s3_create_exists
#   run_test s3_killed_multipart   sx t_s3_killed_multipart
#   run_test s3_env_credentials    sx t_s3_env_credentials
#
# The S3 server is @20minutes/s3rver 4.0.4 (checks SigV4: a wrong secret gets
# 403 SignatureDoesNotMatch), installed with npm into build/s3rver on first
# use ($TFTPGW_S3RVER_DIR overrides the folder) and started per test by
# s3rver-launch.js on a free loopback port with its data under the test's
# directory. Objects are written and checked with Debian's awscli,
# /usr/bin/aws (not a pyenv shim that may come first in PATH), an independent
# client. Without node, npm (when s3rver is not installed yet) or
# /usr/bin/aws the tests SKIP.
#
# s3rver is not real S3 in ways these tests avoid relying on: it answers
# AbortMultipartUpload with 405 and does not enforce the 5 MiB minimum part
# size, so the tests read its request log (s3rver-launch.js, S3RVER_REQLOG)
# to see which requests the gateway sent, and check part sizes themselves.
#
# Gateway configuration (s3_write_config), first match wins:
#   route bad       match bad/       -> backend badsecret (wrong secret_key)
#   route nobucket  match nobucket/  -> backend nobucket (bucket = nope)
#   route pfx       match p/         -> backend pfx (prefix = pfx/), key {rest}
#   route create    match create/    -> backend store, write = create
#   route env       match env/       -> backend envcreds, key {rest}: no keys,
#                                       AWS_* from the environment  } only with
#   route var       match var/       -> backend varcreds, key {rest}: ${VAR} } S3_ENV_CREDS=1
#   route all       match ""         -> backend store, write = overwrite
# Every S3 backend has part_size = 5M and spool_dir = $T/spool.

S3_MODDIR=${TFTPGW_S3RVER_DIR:-$REPO/build/s3rver}
S3_VERSION=4.0.4
S3_BUCKET=test-bucket
S3_AWS=/usr/bin/aws
S3_STATE=""          # "" not checked yet, "ok", or why the tests skip
S3_PID="" S3_PORT="" S3_URL="" S3_REQLOG="" S3_SPOOL=""
S3_ENV_CREDS=0
PART=$((5 << 20))

# ---------------------------------------------------------------- set-up

# s3_setup: once per run, check node and awscli and install s3rver if
# needed; 77 with REASON when the tests cannot run here.
s3_setup() {
    if [ -z "$S3_STATE" ]; then
        S3_STATE=$(s3_check 2>&1) && S3_STATE=ok
    fi
    [ "$S3_STATE" = ok ] && return 0
    REASON=$S3_STATE
    return 77
}

s3_check() {
    command -v node > /dev/null || { echo "node not installed"; return 1; }
    local major
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)
    [ "${major:-0}" -ge 20 ] 2>/dev/null ||
        { echo "node ${major:-?} is too old for @20minutes/s3rver $S3_VERSION (needs >= 20)"; return 1; }
    [ -x "$S3_AWS" ] || { echo "$S3_AWS not installed (make deps installs awscli)"; return 1; }
    local pj=$S3_MODDIR/node_modules/@20minutes/s3rver/package.json
    if [ "$(node -p "require('$pj').version" 2>/dev/null)" != "$S3_VERSION" ]; then
        command -v npm > /dev/null || { echo "npm not installed, cannot install s3rver"; return 1; }
        mkdir -p "$S3_MODDIR" || { echo "cannot create $S3_MODDIR"; return 1; }
        [ -f "$S3_MODDIR/package.json" ] || echo '{"private":true}' > "$S3_MODDIR/package.json"
        if ! (cd "$S3_MODDIR" && timeout 300 npm install --no-audit --no-fund --loglevel=error \
                "@20minutes/s3rver@$S3_VERSION") > "$WORK/npm.log" 2>&1; then
            echo "npm install @20minutes/s3rver@$S3_VERSION failed: $(tail -n 2 "$WORK/npm.log" | tr '\n' ' ')"
            return 1
        fi
    fi
    return 0
}

# the larger fixtures only these tests use, made once
s3_fixtures() {
    [ -f "$FIX/f50M" ] && return 0
    head -c 1024 /dev/urandom > "$FIX/f1k"
    head -c $((30 << 20)) /dev/urandom > "$FIX/f30M"
    head -c $((50 << 20)) /dev/urandom > "$FIX/f50M"
}

# s3_up: s3rver with bucket test-bucket on a free port, its data and request
# log in the test's directory
s3_up() {
    s3_setup || return $?
    s3_fixtures
    S3_SPOOL=$T/spool
    S3_REQLOG=$T/s3req.log
    mkdir -p "$T/s3data" "$S3_SPOOL"
    : > "$S3_REQLOG"
    S3RVER_REQLOG="$S3_REQLOG" node "$HERE/s3rver-launch.js" "$S3_MODDIR" "$T/s3data" 0 \
        "$S3_BUCKET" > "$T/s3rver.out" 2> "$T/s3rver.err" < /dev/null &
    S3_PID=$!
    track "$S3_PID"
    local i
    for i in $(seq 1 100); do
        S3_PORT=$(awk '/^listening / { n = split($2, a, ":"); print a[n] }' "$T/s3rver.out")
        if [ -n "$S3_PORT" ]; then
            S3_URL=http://127.0.0.1:$S3_PORT
            return 0
        fi
        kill -0 "$S3_PID" 2>/dev/null || break
        sleep 0.1
    done
    fail "s3rver did not start: $(tail -n 3 "$T/s3rver.err" | tr '\n' ' ')"
}

s3_down() {
    local pid=$S3_PID
    S3_PID=""
    stop_pid "$pid"
}

# sx FUNCTION ARGS...: run an S3 test, then stop its gateway (a crash is a
# failure, as in run_test) and its s3rver.
sx() {
    [ -n "$PEER" ] && { REASON="gateway-specific (S3 backend)"; return 77; }
    "$@"
    gw_verdict $?
    local rc=$?
    s3_down
    S3_ENV_CREDS=0
    REASON=$GW_REASON
    return $rc
}

# ---------------------------------------------------------------- awscli

# aws3 ARGS...: awscli against s3rver with the right credentials and no
# user configuration; output in $T/aws.out, errors in $T/aws.err
aws3() {
    timeout 60 env -u AWS_PROFILE -u AWS_SESSION_TOKEN \
        AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" \
        "$S3_AWS" --endpoint-url "$S3_URL" "$@" > "$T/aws.out" 2> "$T/aws.err"
}

# s3_put_obj LOCAL KEY: store an object with awscli (a single PUT)
s3_put_obj() {
    aws3 s3api put-object --bucket "$S3_BUCKET" --key "$2" --body "$1" ||
        { fail "awscli put-object $2: $(tr '\n' ' ' < "$T/aws.err")"; return 1; }
}

# s3_check_obj KEY WANT WHAT: the object's Content-Length (head-object) and
# its bytes (get-object) are WANT's
s3_check_obj() {
    local key=$1 want=$2 what=$3 len
    aws3 s3api head-object --bucket "$S3_BUCKET" --key "$key" --query ContentLength --output text ||
        { fail "$what: awscli head-object '$key': $(tr '\n' ' ' < "$T/aws.err")"; return 1; }
    len=$(tr -d '\r\n' < "$T/aws.out")
    [ "$len" = "$(stat -c %s "$want")" ] ||
        { fail "$what: head-object '$key' says ContentLength $len, want $(stat -c %s "$want")"; return 1; }
    rm -f "$T/obj.bin"
    aws3 s3api get-object --bucket "$S3_BUCKET" --key "$key" "$T/obj.bin" ||
        { fail "$what: awscli get-object '$key': $(tr '\n' ' ' < "$T/aws.err")"; return 1; }
    same_file "$T/obj.bin" "$want" "$what (get-object '$key')"
}

# s3_keys: every key in the bucket, one a line, exactly as stored
s3_keys() {
    aws3 s3api list-objects-v2 --bucket "$S3_BUCKET" --output json ||
        { fail "awscli list-objects-v2: $(tr '\n' ' ' < "$T/aws.err")"; return 1; }
    "$PY" -c 'import json, sys
t = open(sys.argv[1], encoding="utf-8").read().strip()
for o in (json.loads(t) if t else {}).get("Contents") or []:
    sys.stdout.buffer.write(o["Key"].encode("utf-8") + b"\n")' "$T/aws.out" > "$T/keys"
}

# s3_listed KEY: KEY is in the bucket (s3_keys first)
s3_listed() { grep -qFx -- "$1" "$T/keys"; }

# s3_absent KEY WHAT: no object KEY is listed
s3_absent() {
    s3_keys || return 1
    s3_listed "$1" || return 0
    fail "$2: object '$1' exists (keys: $(tr '\n' ' ' < "$T/keys"))"
}

# ---------------------------------------------------------------- gateway

# s3_write_config FILE LISTEN [key=value...]: [server] keys as write_config
s3_write_config() {
    local file=$1 listen=$2
    shift 2
    declare -A kv=([timeout]=1000 [retries]=5 [max_blksize]=65464 [max_windowsize]=64)
    local order=(timeout retries max_blksize max_windowsize) p k
    for p in "$@"; do
        k=${p%%=*}
        [ -n "${kv[$k]+x}" ] || order+=("$k")
        kv[$k]=${p#*=}
    done
    {
        echo "; written by tests/integration/s3.sh"
        echo "[server]"
        echo "listen = $listen"
        server_extra
        for k in "${order[@]}"; do echo "$k = ${kv[$k]}"; done
        s3_backend store
        s3_backend pfx "prefix = pfx/"
        s3_backend badsecret "secret_key = not-the-secret"
        s3_backend nobucket "bucket = nope"
        if [ "$S3_ENV_CREDS" = 1 ]; then
            # no access_key: both come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
            s3_backend envcreds "access_key =" "secret_key ="
            # ${VAR} expansion
            s3_backend varcreds "access_key = \${TG_S3_TEST_KEY}" "secret_key = \${TG_S3_TEST_SECRET}"
            s3_route env env/ envcreds overwrite "{rest}"
            s3_route var var/ varcreds overwrite "{rest}"
        fi
        s3_route bad bad/ badsecret overwrite
        s3_route nobucket nobucket/ nobucket overwrite
        s3_route pfx p/ pfx overwrite "{rest}"
        s3_route create create/ store create
        s3_route all "" store overwrite
    } > "$file"
}

# s3_backend NAME ["key = value" overriding or removing ("key =") a key...]
s3_backend() {
    local name=$1 line k over
    local base=" type endpoint bucket region path_style access_key secret_key part_size spool_dir stall_timeout "
    shift
    echo
    echo "[backend $name]"
    for line in "type = s3" "endpoint = $S3_URL" "bucket = $S3_BUCKET" "region = us-east-1" \
        "path_style = yes" "access_key = S3RVER" "secret_key = S3RVER" "part_size = 5M" \
        "spool_dir = $S3_SPOOL" "stall_timeout = 10000"; do
        k=${line%% = *}
        for over in "$@"; do
            [ "${over%% =*}" = "$k" ] && { line=$over; break; }
        done
        [[ $line == *" =" ]] && continue
        echo "$line"
    done
    for over in "$@"; do
        k=${over%% =*}
        case $base in
            *" $k "*) ;;
            *) echo "$over" ;;
        esac
    done
}

# s3_route NAME MATCH BACKEND WRITE [KEY]
s3_route() {
    echo
    echo "[route $1]"
    if [ -n "$2" ]; then echo "match = $2"; else echo "match ="; fi
    echo "backend = $3"
    echo "write = $4"
    [ -n "${5:-}" ] && echo "key = $5"
}

# s3_gw_up [key=value...]: the S3 configuration on a free port, started with
# credentials in the environment that only [backend envcreds] may use
s3_gw_up() {
    HOST=127.0.0.1
    local env=(env -u AWS_SESSION_TOKEN -u AWS_PROFILE
        AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
        TG_S3_TEST_KEY=S3RVER TG_S3_TEST_SECRET=S3RVER)
    # what the test stored with awscli beforehand is not the gateway's doing
    [ -s "$S3_REQLOG" ] && mv "$S3_REQLOG" "$T/s3req-setup.log"
    for _ in 1 2 3; do
        PORT=$(free_port)
        s3_write_config "$T/gw.ini" "127.0.0.1:$PORT" "$@"
        chmod 600 "$T/gw.ini"    # it holds secrets (the gateway warns otherwise)
        start_gateway "${env[@]}" "$GW" --config "$T/gw.ini" && return 0
        case $REASON in *"did not bind"*|*"exited at start-up"*) return 1 ;; esac
    done
    return 1
}

# ---------------------------------------------------------------- helpers

# s3_raw ARGS...: tftpraw.py's command line; sets RAW_RC and RAW_OUT
s3_raw() {
    RAW_OUT=$(timeout 60 "$PY" "$HERE/tftpraw.py" "$@" 2>&1)
    RAW_RC=$?
}

# s3_req PATTERN: request-log lines matching the extended regex PATTERN,
# from the gateway's start on
s3_req() { grep -E -- "$1" "$S3_REQLOG"; }

# s3_spool_empty WHAT: nothing left in the spool directory (waits up to 3 s:
# an aborted upload may clean up after its summary line)
s3_spool_empty() {
    local i left
    for i in $(seq 1 30); do
        left=$(find "$S3_SPOOL" -mindepth 1 -printf '%P(%s) ' 2>/dev/null)
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    fail "$1: spool_dir not empty: $left"
}

# s3_multipart_done KEY WHAT: the request log shows the multipart upload of
# KEY (as in the URL path; an extended regex) created, its parts numbered
# 1..N with exactly part_size bytes each but the last, and completed; sets
# NPARTS
s3_multipart_done() {
    local key=$1 what=$2 n lens last i
    s3_req "^POST /$S3_BUCKET/$key\?uploads(=|&| )" | grep -q ' 200 ' ||
        { fail "$what: no CreateMultipartUpload (POST ?uploads) answered 200: $(s3_log_tail)"; return 1; }
    lens=$(s3_req "^PUT /$S3_BUCKET/$key\?([^ ]*&)?partNumber=" | grep ' 200 ' |
        sed -E 's/.*[?&]partNumber=([0-9]+).* cl=([0-9-]+) .*/\1 \2/' | sort -n)
    NPARTS=$(printf '%s\n' "$lens" | grep -c .)
    [ "$NPARTS" -ge 1 ] || { fail "$what: no UploadPart answered 200: $(s3_log_tail)"; return 1; }
    # numbered 1..N, every part but the last exactly part_size (real S3
    # refuses smaller ones; s3rver does not)
    i=0
    while read -r n len; do
        i=$((i + 1))
        [ "$n" = "$i" ] || { fail "$what: part numbers $(printf '%s' "$lens" | tr '\n' ' ')"; return 1; }
        if [ "$i" -lt "$NPARTS" ] && [ "$len" != "$PART" ]; then
            fail "$what: part $n has $len bytes, want part_size $PART (all parts: $(printf '%s' "$lens" | tr '\n' ' '))"
            return 1
        fi
        last=$len
    done <<< "$lens"
    [ "$last" != "-" ] || { fail "$what: last part sent without Content-Length"; return 1; }
    s3_req "^POST /$S3_BUCKET/$key\?uploadId=" | grep -q ' 200 ' ||
        { fail "$what: no CompleteMultipartUpload (POST ?uploadId=) answered 200: $(s3_log_tail)"; return 1; }
}

s3_log_tail() { tail -n 4 "$S3_REQLOG" | cut -c1-160 | tr '\n' '|'; }

# ---------------------------------------------------------------- tests

# RRQ of small objects: bytes, and tsize taken from Content-Length
t_s3_get_small() {
    s3_up || return $?
    local f
    for f in f0 f1 f513; do
        s3_put_obj "$FIX/$f" "g/$f" || return 1
    done
    s3_gw_up || return 1
    for f in f0 f1 f513; do
        hpa octet get "g/$f" "$T/$f" || return 1
        same_file "$T/$f" "$FIX/$f" "tftp-hpa get g/$f" || return 1
        s3_raw get "$HOST" "$PORT" "g/$f" "$T/raw-$f" -o tsize=0 -o blksize=1468
        [ "$RAW_RC" = 0 ] || { fail "tftpraw get g/$f with tsize: exit $RAW_RC: $RAW_OUT"; return 1; }
        same_file "$T/raw-$f" "$FIX/$f" "tftpraw get g/$f" || return 1
        # no tsize 0 in an OACK (curl refuses it), so only check the others
        if [ "$f" != f0 ] && [[ $RAW_OUT != *"('tsize', '$(stat -c %s "$FIX/$f")')"* ]]; then
            fail "get g/$f: OACK has no tsize $(stat -c %s "$FIX/$f"): $RAW_OUT"
            return 1
        fi
    done
    transfer_logged 513
}

# a 50 MiB object stored by awscli: tftp-hpa at 512 (102400 blocks, the
# block number wraps) and curl at 1468
t_s3_get_50M() {
    s3_up || return $?
    aws3 s3 cp --only-show-errors "$FIX/f50M" "s3://$S3_BUCKET/big/f50M" ||
        { fail "awscli s3 cp f50M: $(tr '\n' ' ' < "$T/aws.err")"; return 1; }
    s3_gw_up || return 1
    hpa octet get big/f50M "$T/hpa" || return 1
    same_file "$T/hpa" "$FIX/f50M" "tftp-hpa get big/f50M" || return 1
    rm -f "$T/hpa"
    curl_get big/f50M "$T/curl" --tftp-blksize 1468 || return 1
    same_file "$T/curl" "$FIX/f50M" "curl get big/f50M blksize 1468" || return 1
    rm -f "$T/curl"
    transfer_logged $((50 << 20))
}

# curl sends tsize: one PUT with Content-Length, no multipart upload
t_s3_put_tsize() {
    s3_up || return $?
    s3_gw_up || return 1
    curl_put "$FIX/f5M" put/f5M --tftp-blksize 1468 || return 1
    # the final ACK comes after the PUT succeeded: the object is there now
    s3_check_obj put/f5M "$FIX/f5M" "curl put f5M" || return 1
    local puts
    puts=$(s3_req "^PUT /$S3_BUCKET/put/f5M ")
    [ "$(printf '%s\n' "$puts" | grep -c .)" = 1 ] && [[ $puts == *" 200 cl=$((5 << 20)) te=- "* ]] ||
        { fail "want one PUT of put/f5M with Content-Length $((5 << 20)), got: $(printf '%s' "$puts" | tr '\n' ' ') | $(s3_log_tail)"; return 1; }
    s3_req "^POST /$S3_BUCKET/put/f5M\?" > /dev/null &&
        { fail "a multipart request for an upload with tsize: $(s3_req "^POST ")"; return 1; }
    s3_spool_empty "after put with tsize" || return 1
    transfer_logged $((5 << 20))
}

# tftp-hpa sends no tsize: multipart upload, parts of part_size (5M) spooled,
# completed before the final ACK. tftp-hpa runs at ~30 MiB/s here (lockstep
# 512-byte blocks on loopback), so it is used as it is.
t_s3_put_multipart_30M() {
    s3_up || return $?
    s3_gw_up || return 1
    local t0=$SECONDS
    hpa octet put "$FIX/f30M" mp/f30M || return 1
    s3_check_obj mp/f30M "$FIX/f30M" "tftp-hpa put f30M (no tsize) in $((SECONDS - t0)) s" || return 1
    s3_multipart_done mp/f30M "tftp-hpa put f30M" || return 1
    # 30 MiB: 6 full parts (a 7th, empty one would be pointless but harmless)
    [ "$NPARTS" -ge 6 ] && [ "$NPARTS" -le 7 ] ||
        { fail "30 MiB in $NPARTS parts of 5 MiB"; return 1; }
    s3_req "^PUT /$S3_BUCKET/mp/f30M " > /dev/null &&
        { fail "a plain PUT for an upload without tsize"; return 1; }
    s3_spool_empty "after a multipart upload" || return 1
    transfer_logged $((30 << 20))
}

# 1 KiB without tsize: less than one part (multipart or, since the size is
# known at the end, a single PUT: both are right)
t_s3_put_notsize_1k() {
    s3_up || return $?
    s3_gw_up || return 1
    hpa octet put "$FIX/f1k" mp/f1k || return 1
    s3_check_obj mp/f1k "$FIX/f1k" "tftp-hpa put f1k" || return 1
    hpa octet put "$FIX/f0" mp/f0 || return 1
    s3_check_obj mp/f0 "$FIX/f0" "tftp-hpa put of an empty file" || return 1
    s3_spool_empty "after small uploads" || return 1
    transfer_logged 1024
}

# SignatureDoesNotMatch -> ERROR 2 for reads, uploads with and without
# tsize; nothing stored
t_s3_wrong_secret() {
    s3_up || return $?
    s3_put_obj "$FIX/f513" bad/there || return 1
    s3_gw_up || return 1
    hpa_expect 2 octet get bad/there "$T/x" || return 1
    curl_expect 2 get bad/there "$T/x" || return 1
    hpa_expect 2 octet put "$FIX/f1k" bad/notsize || return 1
    curl_expect 2 put "$FIX/f513" bad/tsize || return 1
    s3_req ' 403 ' > /dev/null ||
        { fail "s3rver answered no request with 403: $(s3_log_tail)"; return 1; }
    s3_absent bad/notsize "upload with a wrong secret (no tsize)" || return 1
    s3_absent bad/tsize "upload with a wrong secret (tsize)" || return 1
    s3_check_obj bad/there "$FIX/f513" "object after refused reads" || return 1
    s3_spool_empty "after refused uploads"
}

t_s3_missing_key() {
    s3_up || return $?
    s3_gw_up || return 1
    hpa_expect 1 octet get nope "$T/x" || return 1
    curl_expect 1 get dir/nope "$T/x" || return 1
    s3_raw get "$HOST" "$PORT" nope "$T/x" -o blksize=1468 -o tsize=0
    [ "$RAW_RC" = 101 ] || { fail "tftpraw get nope: exit $RAW_RC ($RAW_OUT), want ERROR 1"; return 1; }
    failure_logged nope
}

# NoSuchBucket -> ERROR 0 "upstream error 404": the S3 error code and
# message are the store's business and go to the log, not to the client
t_s3_missing_bucket() {
    s3_up || return $?
    s3_gw_up || return 1
    s3_raw get "$HOST" "$PORT" nobucket/x "$T/x"
    [ "$RAW_RC" = 100 ] && [ "$RAW_OUT" = "error 0 upstream error 404" ] ||
        { fail "get from a missing bucket: exit $RAW_RC '$RAW_OUT', want ERROR 0 \"upstream error 404\""; return 1; }
    log_has "backend nobucket: GET $S3_URL/nope/nobucket/x failed: HTTP 404 NoSuchBucket" || return 1
    s3_raw put "$HOST" "$PORT" "$FIX/f1k" nobucket/up
    [ "$RAW_RC" = 100 ] && [ "$RAW_OUT" = "error 0 upstream error 404" ] ||
        { fail "put (no tsize) to a missing bucket: exit $RAW_RC '$RAW_OUT', want ERROR 0 \"upstream error 404\""; return 1; }
    s3_raw put "$HOST" "$PORT" "$FIX/f1k" nobucket/up2 -o tsize=1024
    [ "$RAW_RC" = 100 ] && [ "$RAW_OUT" = "error 0 upstream error 404" ] ||
        { fail "put (tsize) to a missing bucket: exit $RAW_RC '$RAW_OUT', want ERROR 0 \"upstream error 404\""; return 1; }
    log_has "backend nobucket: PUT $S3_URL/nope/nobucket/up2 failed: HTTP 404 NoSuchBucket" || return 1
    s3_spool_empty "after uploads to a missing bucket"
}

# space, '+' and UTF-8 in keys, both ways and both upload paths
t_s3_key_chars() {
    s3_up || return $?
    local k1="chars/a b+é.bin" k2="chars/c+d é 2.bin" k3="chars/aws é+ x.bin"
    s3_put_obj "$FIX/f4404" "$k3" || return 1
    s3_gw_up || return 1
    hpa octet put "$FIX/f513" "$k1" || return 1                          # multipart
    curl_put "$FIX/f1k" "chars/c%2Bd%20%C3%A9%202.bin" || return 1       # single PUT
    s3_keys || return 1
    local k
    for k in "$k1" "$k2" "$k3"; do
        s3_listed "$k" || { fail "key '$k' not listed; keys: $(tr '\n' '|' < "$T/keys")"; return 1; }
    done
    [ "$(grep -c '^chars/' "$T/keys")" = 3 ] ||
        { fail "other keys under chars/: $(tr '\n' '|' < "$T/keys")"; return 1; }
    s3_check_obj "$k1" "$FIX/f513" "tftp-hpa put '$k1'" || return 1
    s3_check_obj "$k2" "$FIX/f1k" "curl put '$k2'" || return 1
    hpa octet get "$k1" "$T/g1" || return 1
    same_file "$T/g1" "$FIX/f513" "get '$k1' back" || return 1
    curl_get "chars/c%2Bd%20%C3%A9%202.bin" "$T/g2" || return 1
    same_file "$T/g2" "$FIX/f1k" "get '$k2' back" || return 1
    hpa octet get "$k3" "$T/g3" || return 1
    same_file "$T/g3" "$FIX/f4404" "get '$k3' (stored by awscli)" || return 1
}

# prefix = pfx/ on the backend, key {rest} on the route: p/X is pfx/X
t_s3_prefix() {
    s3_up || return $?
    s3_put_obj "$FIX/f4404" pfx/fromaws || return 1
    s3_put_obj "$FIX/f1" fromaws || return 1       # must not be the one served
    s3_gw_up || return 1
    hpa octet put "$FIX/f1k" p/obj || return 1
    curl_put "$FIX/f513" p/sub/obj2 || return 1
    s3_keys || return 1
    s3_listed pfx/obj && s3_listed pfx/sub/obj2 ||
        { fail "uploads not under pfx/: keys $(tr '\n' '|' < "$T/keys")"; return 1; }
    local k
    for k in obj p/obj sub/obj2 p/sub/obj2 pfx/p/obj; do
        s3_listed "$k" && { fail "upload stored as '$k': keys $(tr '\n' '|' < "$T/keys")"; return 1; }
    done
    s3_check_obj pfx/obj "$FIX/f1k" "put p/obj" || return 1
    hpa octet get p/fromaws "$T/g" || return 1
    same_file "$T/g" "$FIX/f4404" "get p/fromaws (pfx/fromaws)" || return 1
    hpa octet get p/obj "$T/g2" || return 1
    same_file "$T/g2" "$FIX/f1k" "get p/obj back"
}

# write = create: HEAD first, an existing object is ERROR 6 and unchanged
t_s3_create_exists() {
    s3_up || return $?
    s3_put_obj "$FIX/f513" create/existing || return 1
    s3_gw_up || return 1
    hpa_expect 6 octet put "$FIX/f1k" create/existing || return 1
    curl_expect 6 put "$FIX/f1" create/existing || return 1
    [ "$(s3_req "^HEAD /$S3_BUCKET/create/existing " | grep -c ' 200 ')" -ge 2 ] ||
        { fail "no HEAD per refused upload: $(s3_log_tail)"; return 1; }
    s3_check_obj create/existing "$FIX/f513" "create/existing after refused uploads" || return 1
    s3_req "^(PUT|POST) /$S3_BUCKET/create/existing" > /dev/null &&
        { fail "the gateway wrote to an existing key in create mode: $(s3_req "^(PUT|POST) /$S3_BUCKET/create/")"; return 1; }
    hpa octet put "$FIX/f1k" create/new || return 1
    s3_check_obj create/new "$FIX/f1k" "create of a new key" || return 1
    s3_spool_empty "after create-mode uploads"
}

# a client killed after more than one part (no tsize): no object, the
# multipart upload is aborted (s3rver answers 405; only the attempt is
# checked), the spool is cleaned, and the gateway goes on serving
t_s3_killed_multipart() {
    s3_up || return $?
    s3_gw_up timeout=200 retries=3 || return 1
    # not under `timeout`: the pid must be the client itself. It prints HALF
    # once 7 MiB (more than one part) are ACKed, then hangs.
    "$PY" - "$HERE" "$HOST" "$PORT" "$FIX/f30M" > "$T/client.out" 2>&1 <<'EOF' &
import sys, time
sys.path.insert(0, sys.argv[1])
import tftpraw as T
data = open(sys.argv[4], "rb").read()[:12 << 20]
def hook(c, res, n):
    if n * res.blksize >= 7 << 20:
        print("HALF", n, flush=True)
        time.sleep(120)
with T.Client(sys.argv[2], int(sys.argv[3]), 1.0, 5) as c:
    c.put(b"killed/obj", data, options=[("blksize", "1468")], hook=hook)
print("FINISHED")
EOF
    local pid=$! i
    track "$pid"
    for i in $(seq 1 200); do
        grep -q HALF "$T/client.out" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q HALF "$T/client.out"; then
        kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; untrack "$pid"
        fail "the client did not get 7 MiB through: $(tail -n 3 "$T/client.out" | tr '\n' ' ')"
        return 1
    fi
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    untrack "$pid"
    # the session gives up after about 200*(1+2+4+8) ms
    failure_logged killed/obj || return 1
    # (logged when its answer ends: part 1 may still be on its way at the kill)
    s3_req "^PUT /$S3_BUCKET/killed/obj\?([^ ]*&)?partNumber=1[&= ]" > /dev/null ||
        { fail "part 1 was never uploaded: $(s3_log_tail)"; return 1; }
    local aborted=""
    for i in $(seq 1 30); do
        aborted=$(s3_req "^DELETE /$S3_BUCKET/killed/obj\?([^ ]*&)?uploadId=")
        [ -n "$aborted" ] && break
        sleep 0.1
    done
    [ -n "$aborted" ] || { fail "no AbortMultipartUpload (DELETE ?uploadId=) sent: $(s3_log_tail)"; return 1; }
    s3_req "^POST /$S3_BUCKET/killed/obj\?uploadId=" > /dev/null &&
        { fail "the killed upload was completed: $(s3_req "^POST /$S3_BUCKET/killed/")"; return 1; }
    s3_absent killed/obj "after a killed upload" || return 1
    s3_spool_empty "after a killed upload" || return 1
    hpa octet put "$FIX/f513" after/obj || return 1
    s3_check_obj after/obj "$FIX/f513" "upload after the killed one"
}

# credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when the keys are
# unset, and from ${VAR} in the file
t_s3_env_credentials() {
    s3_up || return $?
    s3_put_obj "$FIX/f513" e/obj || return 1
    S3_ENV_CREDS=1
    s3_gw_up || return 1
    hpa octet get env/e/obj "$T/g1" || return 1
    same_file "$T/g1" "$FIX/f513" "get with credentials from AWS_* variables" || return 1
    hpa octet get var/e/obj "$T/g2" || return 1
    same_file "$T/g2" "$FIX/f513" "get with \${VAR} credentials" || return 1
    curl_put "$FIX/f1k" env/e/up || return 1
    s3_check_obj e/up "$FIX/f1k" "put with credentials from AWS_* variables"
}
