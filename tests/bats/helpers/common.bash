# shellcheck shell=bash
# Sandbox for install.sh tests: a fresh HOME per test, stubs first on PATH, and only a small
# set of real tools (coreutils & co, through symlinks) so the real system is never touched.

HELPERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HELPERS_DIR/../../.." && pwd)"
INSTALL_SH="$REPO_ROOT/install.sh"
REAL_TOOLS="bash sh cat grep awk sed mkdir mktemp mv cp rm rmdir chmod date cmp head tail tr
basename dirname ln cut sort env touch ls find sha256sum unzip wc true false"
RCLONE_FAKE_VERSION="1.71.0"
# The real Python (with click) that runs the real `visionlab-buckets` setup commands.
STUB_REAL_PYTHON="$REPO_ROOT/.venv/bin/python"
[ -x "$STUB_REAL_PYTHON" ] || STUB_REAL_PYTHON="$(type -P python3)"
export STUB_REAL_PYTHON STUB_REPO_SRC="$REPO_ROOT/src"

setup_sandbox() {
    T="$BATS_TEST_TMPDIR"
    export HOME="$T/home"
    mkdir -p "$HOME" "$T/tmp" "$T/sysbin" "$T/state" "$T/web" "$T/brew/bin" "$T/dev" "$T/tools"
    export TMPDIR="$T/tmp"
    export STUB_LOG="$T/log" STUB_STATE="$T/state" STUB_SYSBIN="$T/sysbin" STUB_WEB="$T/web"
    export STUB_TEMPLATES="$HELPERS_DIR/templates" STUB_BREW_PREFIX="$T/brew"
    : >"$STUB_LOG"

    STUBS="$T/stubs"
    cp -R "$HELPERS_DIR/stubs" "$STUBS"
    local tool
    for tool in $REAL_TOOLS; do
        ln -s "$(type -P "$tool")" "$T/tools/$tool"
    done
    SANDBOX_PATH="$STUBS:$STUB_BREW_PREFIX/bin:$STUB_SYSBIN:$T/tools"

    # The environment of a plain Debian user; each test changes what it needs.
    unset CI NONINTERACTIVE SLURM_JOB_ID LIGHTNING_CLOUD_PROJECT_ID LIGHTNING_CLOUDSPACE_HOST
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE
    unset RCLONE_CONFIG XDG_CONFIG_HOME XDG_DATA_HOME ZDOTDIR UV_TOOL_BIN_DIR UV_TOOL_DIR
    unset STUB_UID STUB_SUDO STUB_UNAME_S STUB_UNAME_M STUB_RCLONE_VERSION STUB_DOCTOR_RC STUB_CURL_DOWN
    unset STUB_UV_INSTALL_FAIL STUB_UV_CERT_FAIL STUB_UV_CERTS_OPTION
    unset AWS_CONFIG_FILE AWS_DEFAULT_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE
    unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^VISIONLAB_BUCKETS_' || true)
    export SHELL=/bin/bash
    export VISIONLAB_BUCKETS_OS_RELEASE="$T/os-release"
    export VISIONLAB_BUCKETS_DEV_FUSE="$T/dev/fuse"
    export VISIONLAB_BUCKETS_TEAMSPACE_DIR="$T/teamspace"
    export VISIONLAB_BUCKETS_FUSE_T_FRAMEWORK="$T/Library/Frameworks/fuse_t.framework"
    export VISIONLAB_BUCKETS_TTY="$T/no-tty"
    export VISIONLAB_BUCKETS_SOURCE="$T/checkout"
    printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' \
        >"$VISIONLAB_BUCKETS_OS_RELEASE"
    touch "$VISIONLAB_BUCKETS_DEV_FUSE"

    # A checkout of the project with its shell files.
    mkdir -p "$T/checkout/shell" "$T/checkout/completions"
    echo '# buckets.sh (test)' >"$T/checkout/shell/buckets.sh"
    echo '# buckets.fish (test)' >"$T/checkout/shell/buckets.fish"
    echo '# completion (test)' >"$T/checkout/completions/mount-bucket.bash"

    make_rclone_release linux amd64
    make_rclone_release osx arm64
    printf 'rclone v%s\n' "$RCLONE_FAKE_VERSION" >"$STUB_WEB/downloads.rclone.org/version.txt"
    mkdir -p "$STUB_WEB/astral.sh/uv"
    cat >"$STUB_WEB/astral.sh/uv/install.sh" <<EOS
#!/bin/sh
# fake uv installer: honours UV_INSTALL_DIR like the real one
mkdir -p "\$UV_INSTALL_DIR"
cp "$HELPERS_DIR/stubs/uv" "\$UV_INSTALL_DIR/uv"
echo "uv-installer UV_NO_MODIFY_PATH=\$UV_NO_MODIFY_PATH UV_INSTALL_DIR=\$UV_INSTALL_DIR" >>"\$STUB_LOG"
EOS
}

# A release zip like downloads.rclone.org's, with a stub rclone inside, and its SHA256SUMS.
make_rclone_release() {
    local os="$1" arch="$2" v="v$RCLONE_FAKE_VERSION" dir name
    dir="$STUB_WEB/downloads.rclone.org/$v"
    name="rclone-$v-$os-$arch"
    mkdir -p "$dir" "$T/build/$name"
    sed "s/^echo \"rclone/RCLONE_STUB_VERSION=$RCLONE_FAKE_VERSION; &/" "$STUB_TEMPLATES/rclone" \
        >"$T/build/$name/rclone"
    chmod 755 "$T/build/$name/rclone"
    echo "rclone docs" >"$T/build/$name/README.txt"
    (cd "$T/build" && python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for f in sys.argv[2:]:
        z.write(f)' "$dir/$name.zip" "$name/rclone" "$name/README.txt")
    (cd "$dir" && {
        [ -f SHA256SUMS ] || printf -- '-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA1\n\n' >SHA256SUMS
        sha256sum "$name.zip" >>SHA256SUMS
    })
}

# Run install.sh inside the sandbox (bats `run`: sets $status and $output).
run_installer() {
    run env PATH="$SANDBOX_PATH" /bin/bash "$INSTALL_SH" "$@"
}

# The stub log, with sandbox paths made stable.
stub_log() {
    sed -e "s#$TMPDIR/visionlab-buckets-install\.[A-Za-z0-9]*#<tmp>#g" -e "s#$T#\$T#g" "$STUB_LOG"
}

# Mode, type and content hash of everything under HOME (and the files in the sandbox's /tmp).
tree_sums() {
    (cd "$1" && find . -mindepth 1 -printf '%m %y %p\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# The block the installer writes into bash/zsh rc files, for the default paths.
expected_posix_block() {
    cat <<'EOS'
# >>> visionlab-buckets >>>
# Added by the visionlab-buckets installer; remove with: install.sh --uninstall
case ":${PATH}:" in
    *":$HOME/.local/bin:"*) ;;
    *) export PATH="$HOME/.local/bin:$PATH" ;;
esac
if [ -f "$HOME/.local/share/visionlab-buckets/shell/buckets.sh" ]; then
    . "$HOME/.local/share/visionlab-buckets/shell/buckets.sh"
fi
# <<< visionlab-buckets <<<
EOS
}

expected_fish_conf() {
    cat <<'EOS'
# Added by the visionlab-buckets installer; remove with: install.sh --uninstall
if not contains -- "$HOME/.local/bin" $PATH
    set -gx PATH "$HOME/.local/bin" $PATH
end
if test -f "$HOME/.local/share/visionlab-buckets/shell/buckets.fish"
    source "$HOME/.local/share/visionlab-buckets/shell/buckets.fish"
end
EOS
}

expected_seed_conf() {
    cat <<'EOS'
[s3_remote]
type = s3
provider = AWS
env_auth = true
region = us-east-1
acl = public-read

[s3_remote_private]
type = s3
provider = AWS
env_auth = true
region = us-east-1
acl = private
EOS
}

# assert_file_equals <file> <exact expected bytes on stdin>
assert_file_equals() {
    cat >"$BATS_TEST_TMPDIR/expected"
    if [ ! -f "$1" ]; then
        echo "missing file: $1" >&2
        return 1
    fi
    if ! cmp -s "$BATS_TEST_TMPDIR/expected" "$1"; then
        diff -u "$BATS_TEST_TMPDIR/expected" "$1" >&2 || true
        return 1
    fi
}

# assert_log <exact expected stub log on stdin>
assert_log() {
    cat >"$BATS_TEST_TMPDIR/expected.log"
    if ! cmp -s "$BATS_TEST_TMPDIR/expected.log" <(stub_log); then
        diff -u "$BATS_TEST_TMPDIR/expected.log" <(stub_log) >&2 || true
        return 1
    fi
}

# assert_output_has <line>...: each line appears in $output (exact line match)
# shellcheck disable=SC2154 # $output is set by bats `run`
assert_output_has() {
    local line
    for line in "$@"; do
        if ! grep -qxF -- "$line" <<<"$output"; then
            echo "output lacks line: $line" >&2
            printf '%s\n' "--- output:" "$output" >&2
            return 1
        fi
    done
}
