#!/usr/bin/env bash
# Try visionlab-buckets without AWS: a loopback S3 server (rclone serve s3) with a sample
# bucket, a private rclone config and runtime dir, one real mount, a look inside, and cleanup.
# Usage: scripts/try-without-aws.sh [--keep]   (--keep leaves server and mount running)
set -eu

say() { printf 'try: %s\n' "$*"; }
err() { say "error: $*" >&2; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || err "need '$1' (see README: Installation)"; }

main() {
    local keep=0 work port pid
    [ "${1:-}" = "--keep" ] && keep=1
    need_cmd rclone
    need_cmd mount-bucket
    work=$(mktemp -d /tmp/vb-try.XXXXXX)
    port=$(( 20000 + RANDOM % 20000 ))
    mkdir -p "$work/s3/sample-bucket/images" "$work/home"
    printf 'hello from a loopback S3 server\n' >"$work/s3/sample-bucket/README.txt"
    for i in 1 2 3; do printf 'image %s\n' "$i" >"$work/s3/sample-bucket/images/$i.txt"; done

    export AWS_ACCESS_KEY_ID=tryaccesskey AWS_SECRET_ACCESS_KEY=trysecretkey123
    export RCLONE_CONFIG="$work/rclone.conf" VISIONLAB_BUCKETS_RUNTIME_DIR="$work/rt" HOME="$work/home"
    printf '[s3_remote]\ntype = s3\nprovider = Other\nenv_auth = true\nendpoint = http://127.0.0.1:%s\nacl = public-read\n' \
        "$port" >"$RCLONE_CONFIG"

    rclone serve s3 --addr "127.0.0.1:$port" --auth-key "$AWS_ACCESS_KEY_ID,$AWS_SECRET_ACCESS_KEY" \
        --etag-hash '' "$work/s3" </dev/null >"$work/server.log" 2>&1 &
    pid=$!
    say "S3 server on 127.0.0.1:$port (pid $pid), data in $work/s3"
    sleep 1

    mount-bucket sample-bucket
    say "ls ~/s3_buckets/sample-bucket:"
    ls -R "$HOME/s3_buckets/sample-bucket"
    mount-bucket --status sample-bucket
    if [ "$keep" = 1 ]; then
        say "left running; to use it: export RCLONE_CONFIG=$RCLONE_CONFIG VISIONLAB_BUCKETS_RUNTIME_DIR=$VISIONLAB_BUCKETS_RUNTIME_DIR HOME=$HOME"
        say "stop with: unmount-bucket --all; kill $pid"
        return 0
    fi
    unmount-bucket sample-bucket
    kill "$pid"
    rm -rf "$work"
    say "done: mounted, read, unmounted and cleaned up"
}

main "$@"
