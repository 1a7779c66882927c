#!/usr/bin/env bats
# Pure shell behaviour of shell/buckets.sh (bash, zsh) and shell/buckets.fish, with a stubbed
# mount-bucket (tests/bats/shell_helpers/mount-bucket) first on PATH. Real mounts and real TABs:
# tests/test_shells.py.

setup() {
    REPO="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    SH="$REPO/shell/buckets.sh"
    FISH="$REPO/shell/buckets.fish"
    T="$BATS_TEST_TMPDIR"
    export STUB_LOG="$T/calls" STUB_ROOT="$T/s3 buckets"
    mkdir -p "$T/stubs" "$T/start" "$T/empty" "$STUB_ROOT"
    cp "$BATS_TEST_DIRNAME/shell_helpers/mount-bucket" "$T/stubs/"
    : >"$STUB_LOG"
    export PATH="$T/stubs:$PATH"
    cd "$T/start" || return 1
}

# in_shell bash|zsh SCRIPT: run SCRIPT in a shell without rc files, stdout and stderr together.
in_shell() {
    case "$1" in
        bash) run bash --norc --noprofile -c "$2" ;;
        zsh) run zsh -f -c "$2" ;;
        fish) run fish --no-config -c "$2" ;;
    esac
}

# none_but REGEX: every line of $output matches REGEX.
none_but() {
    local extra
    extra="$(grep -Ev "$1" <<<"$output" || true)"
    [ -z "$extra" ] || { echo "unexpected: $extra"; return 1; }
}

need() {
    command -v "$1" >/dev/null || skip "$1 not installed"
}

# ------------------------------------------------------------------------------- sourcing

@test "sourcing runs no program (strace: no fork, no exec beyond the shell itself)" {
    need strace
    local sh file
    for sh in bash zsh fish; do
        need "$sh"
        file="$SH"; [ "$sh" = fish ] && file="$FISH"
        : >"$T/empty.sh"
        strace -f -qq -e trace=execve,fork,vfork,clone,clone3 -o "$T/base" \
            "$sh" "$([ "$sh" = fish ] && echo --no-config || echo -f)" -c "source '$T/empty.sh'"
        strace -f -qq -e trace=execve,fork,vfork,clone,clone3 -o "$T/trace" \
            "$sh" "$([ "$sh" = fish ] && echo --no-config || echo -f)" -c "source '$file'"
        # Threads (fish's I/O thread pool: clone with CLONE_THREAD) are not processes.
        if [ "$(grep -vc CLONE_THREAD "$T/trace")" != "$(grep -vc CLONE_THREAD "$T/base")" ]; then
            echo "$sh: sourcing $file made system calls an empty file does not:"
            diff <(cut -d' ' -f2- "$T/base" | sed 's/[0-9]\+/N/g') \
                 <(cut -d' ' -f2- "$T/trace" | sed 's/[0-9]\+/N/g') || true
            return 1
        fi
    done
}

@test "sourcing with only a logging mount-bucket on PATH: silent, status 0, nothing called" {
    local sh
    for sh in bash zsh; do
        in_shell "$sh" "PATH='$T/stubs'; set -u; . '$SH'; echo sourced=\$?"
        [ "$output" = "sourced=0" ] || { echo "$sh: $output"; return 1; }
    done
    in_shell fish "set PATH '$T/stubs'; source '$FISH'; echo sourced=\$status"
    [ "$output" = "sourced=0" ]
    [ ! -s "$STUB_LOG" ]
}

@test "sourcing defines only cdbucket, _visionlab_buckets_* and Click's completion functions" {
    local allowed='^(cdbucket|_visionlab_buckets_[a-z_]+|_(un)?mount_bucket_completion(_setup)?)$'
    in_shell bash "compgen -A function >'$T/f0'; compgen -v >'$T/v0'; . '$SH'
                   compgen -A function >'$T/f1'; compgen -v >'$T/v1'"
    [ "$status" -eq 0 ]
    run comm -13 "$T/f0" "$T/f1"
    [ -n "$output" ]
    none_but "$allowed"
    run comm -13 <(sort "$T/v0") <(sort "$T/v1")
    none_but '^(BASH_REMATCH|PIPESTATUS|_)$'  # bash's own

    in_shell zsh "print -l \${(ko)functions} >'$T/zf0'; print -l \${(ko)parameters} >'$T/zv0'
                  . '$SH'; print -l \${(ko)functions} >'$T/zf1'; print -l \${(ko)parameters} >'$T/zv1'"
    [ "$status" -eq 0 ]
    run comm -13 "$T/zf0" "$T/zf1"
    none_but "$allowed|^add-zsh-hook$"
    run comm -13 "$T/zv0" "$T/zv1"
    none_but '^(_visionlab_buckets_[a-z_]+|precmd_functions)$'

    in_shell fish "functions -a >'$T/ff0'; set -n >'$T/fv0'; source '$FISH'
                   functions -a >'$T/ff1'; set -n >'$T/fv1'"
    [ "$status" -eq 0 ]
    run comm -13 "$T/ff0" "$T/ff1"
    none_but "$allowed"
    run comm -13 "$T/fv0" "$T/fv1"
    [ "$output" = "" ]
}

@test "sh (dash) reading ~/.profile skips the file quietly" {
    run sh -c ". '$SH'; echo after=\$?"
    [ "$output" = "after=0" ]
}

# ------------------------------------------------------------------------------- cdbucket

@test "cdbucket cds into the link mount-bucket reports, under set -u" {
    local sh
    for sh in bash zsh; do
        in_shell "$sh" "set -u; . '$SH'; cdbucket teamspace-lrm; echo rc=\$?; pwd"
        [ "$output" = "rc=0
$STUB_ROOT/teamspace-lrm" ] || { echo "$sh: $output"; return 1; }
    done
    in_shell fish "source '$FISH'; cdbucket teamspace-lrm; echo rc=\$status; pwd"
    [ "$output" = "rc=0
$STUB_ROOT/teamspace-lrm" ]
    grep -qx 'mount-bucket --print-link -- teamspace-lrm' "$STUB_LOG"
}

@test "cdbucket BUCKET SUBPATH (with a space) lands below the link" {
    local sh
    for sh in bash zsh; do
        in_shell "$sh" "set -u; . '$SH'; cdbucket teamspace-lrm 'sub dir' && pwd"
        [ "$output" = "$STUB_ROOT/teamspace-lrm/sub dir" ] || { echo "$sh: $output"; return 1; }
    done
    in_shell fish "source '$FISH'; cdbucket teamspace-lrm 'sub dir'; and pwd"
    [ "$output" = "$STUB_ROOT/teamspace-lrm/sub dir" ]
}

@test "cdbucket ignores the user's cd alias and cd function" {
    in_shell bash "shopt -s expand_aliases
                   cd() { echo USER-FUNCTION; }
                   alias cd='echo USER-ALIAS'
                   set -u; . '$SH'
                   cdbucket teamspace-lrm; pwd"
    [ "$output" = "$STUB_ROOT/teamspace-lrm" ]
    in_shell zsh "function cd { echo USER-FUNCTION; }
                  alias cd='echo USER-ALIAS'
                  set -u; . '$SH'
                  cdbucket teamspace-lrm; pwd"
    [ "$output" = "$STUB_ROOT/teamspace-lrm" ]
    in_shell fish "function cd; echo USER-FUNCTION; end
                   alias cd 'echo USER-ALIAS'
                   source '$FISH'; cdbucket teamspace-lrm; pwd"
    [ "$output" = "$STUB_ROOT/teamspace-lrm" ]
}

@test "a failed mount: mount-bucket's error, a cdbucket line, its status, cwd unchanged" {
    local sh want="error: bucket 'bad' not found on remote 's3_remote'
cdbucket: could not mount 'bad'; staying in $T/start
rc=1
$T/start"
    for sh in bash zsh; do
        in_shell "$sh" "set -u; . '$SH'; cdbucket bad; echo rc=\$?; pwd"
        [ "$output" = "$want" ] || { echo "$sh: $output"; return 1; }
    done
    in_shell fish "source '$FISH'; cdbucket bad; echo rc=\$status; pwd"
    [ "$output" = "$want" ]
}

@test "no link in mount-bucket's answer, a missing SUBPATH: non-zero, cwd unchanged" {
    local sh
    for sh in bash zsh; do
        in_shell "$sh" "set -u; . '$SH'; cdbucket mute; echo rc=\$?; pwd"
        [ "$output" = "cdbucket: mount-bucket did not report a usable link for 'mute': something else
rc=1
$T/start" ] || { echo "$sh: $output"; return 1; }
        in_shell "$sh" "set -u; . '$SH'; cdbucket teamspace-lrm nope >/dev/null 2>&1; echo rc=\$?; pwd"
        [ "$output" = "rc=1
$T/start" ] || { echo "$sh: $output"; return 1; }
    done
    in_shell fish "source '$FISH'; cdbucket mute; echo rc=\$status; pwd"
    [[ "${lines[1]}" = "rc=1" && "${lines[2]}" = "$T/start" ]] || { echo "fish: $output"; return 1; }
    in_shell fish "source '$FISH'; cdbucket teamspace-lrm nope 2>/dev/null; echo rc=\$status; pwd"
    [ "$output" = "rc=1
$T/start" ]
}

@test "usage errors, and mount-bucket missing from PATH" {
    local sh
    for sh in bash zsh; do
        in_shell "$sh" "set -u; . '$SH'; cdbucket; echo rc=\$?"
        [ "$output" = "usage: cdbucket BUCKET [SUBPATH]
rc=2" ] || { echo "$sh: $output"; return 1; }
        in_shell "$sh" "set -u; . '$SH'; PATH='$T/empty'; cdbucket x; echo rc=\$?; pwd"
        [ "${lines[0]}" = "cdbucket: mount-bucket not found on PATH (run install.sh, or add ~/.local/bin to PATH)" ]
        [[ "${lines[1]}" = "rc=127" && "${lines[2]}" = "$T/start" ]] || { echo "$sh: $output"; return 1; }
    done
    in_shell fish "source '$FISH'; cdbucket a b c; echo rc=\$status"
    [ "$output" = "usage: cdbucket BUCKET [SUBPATH]
rc=2" ]
    in_shell fish "source '$FISH'; set PATH '$T/empty'; cdbucket x; echo rc=\$status"
    [ "${lines[1]}" = "rc=127" ]
}

# ------------------------------------------------------------------------------- completion

@test "bash: cdbucket <TAB> asks Click as mount-bucket; only for the first argument" {
    in_shell bash ". '$SH'; COMP_WORDS=(cdbucket te); COMP_CWORD=1
                   _visionlab_buckets_complete_cdbucket; echo \"\${COMPREPLY[*]}\"
                   COMP_WORDS=(cdbucket teamspace-lrm ''); COMP_CWORD=2
                   _visionlab_buckets_complete_cdbucket; echo \"n=\${#COMPREPLY[@]}\""
    [ "$output" = "teamspace-lrm team-two
n=0" ]
    grep -qx 'complete bash_complete COMP_WORDS=mount-bucket te COMP_CWORD=1' "$STUB_LOG"
    [ "$(grep -c '^complete' "$STUB_LOG")" = 1 ]
}

@test "zsh: completions load now after compinit, or at the first prompt after it" {
    in_shell zsh "autoload -Uz compinit; compinit -D -u; . '$SH'
                  print \${_comps[mount-bucket]} \${_comps[unmount-bucket]} \${_comps[cdbucket]}"
    [ "$output" = "_mount_bucket_completion _unmount_bucket_completion _visionlab_buckets_complete_cdbucket" ]
    in_shell zsh ". '$SH'; autoload -Uz compinit; compinit -D -u
                  for f in \$precmd_functions; do \$f; done
                  print \${_comps[cdbucket]} \${#precmd_functions}"
    [ "$output" = "_visionlab_buckets_complete_cdbucket 0" ]
}

@test "fish: cdbucket <TAB> asks Click as mount-bucket" {
    in_shell fish "source '$FISH'; complete -C 'cdbucket te'"
    [ "$output" = "teamspace-lrm
team-two" ]
    grep -qx 'complete bash_complete COMP_WORDS=mount-bucket te COMP_CWORD=1' "$STUB_LOG"
    in_shell fish "source '$FISH'; complete -C 'cdbucket teamspace-lrm '"
    [ "$output" = "" ]
}
