#!/usr/bin/env bash
# What shell/ costs: sourcing buckets.sh / buckets.fish against sourcing an empty file (bash, zsh,
# fish; goal: under 5 ms added), and the latency of a TAB (Click's completion protocol) when
# nothing needs the network. Writes bench/shell_results.md.
#
#     bench/shell_startup.sh [RESULTS.md]
#
# Needs hyperfine (apt-get install hyperfine). Uses a throwaway runtime dir and HOME, so the
# numbers do not depend on (or touch) this user's mounts.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/bench/shell_results.md}"
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HOME="$work/home" VISIONLAB_BUCKETS_RUNTIME_DIR="$work/rt" RCLONE_CONFIG="$work/rclone.conf"
mkdir -p "$HOME" && chmod 700 "$work"
: >"$work/empty"
printf '[s3_remote]\ntype = s3\nprovider = Other\nenv_auth = true\n' >"$RCLONE_CONFIG"
# Two buckets known to this "user" (state files, as a mount leaves them), and a fresh listing
# cache for mount-bucket: every TAB below is answered without the network.
for d in "$VISIONLAB_BUCKETS_RUNTIME_DIR" "$VISIONLAB_BUCKETS_RUNTIME_DIR/buckets" \
    "$VISIONLAB_BUCKETS_RUNTIME_DIR/buckets/completion"; do
    mkdir -m 700 "$d"
done
echo '{}' >"$VISIONLAB_BUCKETS_RUNTIME_DIR/buckets/teamspace-lrm.json"
echo '{}' >"$VISIONLAB_BUCKETS_RUNTIME_DIR/buckets/other-data.json"
printf '{"buckets": ["teamspace-lrm", "other-data"], "listed_at": %s, "tried_at": %s}\n' \
    "$(date +%s)" "$(date +%s)" >"$VISIONLAB_BUCKETS_RUNTIME_DIR/buckets/completion/s3_remote.json"
# A zsh with compinit already run (its dump cached), as a typical ~/.zshrc has it.
printf 'autoload -Uz compinit\ncompinit -C -d %s/zcompdump\n' "$work" >"$work/compinit.zsh"
zsh -f -c "source $work/compinit.zsh"

hf() { # hf NAME COMMAND...: hyperfine, results in $work/NAME.json
    local name="$1"; shift
    hyperfine -N --warmup 20 --min-runs 200 --export-json "$work/$name.json" "$@" >/dev/null 2>&1
}

table() { # table [--added] NAME...: median, mean ± σ, min (ms) of each command; --added: pairs
    python3 - "$work" "$@" <<'PY'
import json, statistics, sys
work, names = sys.argv[1], sys.argv[2:]
added = names[0] == "--added"
names = names[1:] if added else names
print("| Command | Median [ms] | Mean ± σ [ms] | Min [ms] |" + (" Added: median, min [ms] |" if added else ""))
print("|:---|---:|---:|---:|" + ("---:|" if added else ""))
for name in names:
    results = json.load(open(f"{work}/{name}.json"))["results"]
    base = None
    for r in results:
        med = statistics.median(r["times"]) * 1e3
        row = f"| {r['command']} | {med:.1f} | {r['mean']*1e3:.1f} ± {r['stddev']*1e3:.1f} | {r['min']*1e3:.1f} |"
        if added:
            row += " |" if base is None else f" {med - base[0]:+.1f}, {r['min']*1e3 - base[1]:+.1f} |"
            base = base or (med, r["min"] * 1e3)
        print(row)
PY
}

# In-shell loop: N sourcings inside one shell, per-sourcing microseconds (no process start noise).
loop() { # loop SHELL FILE
    local n=200
    case "$1" in
        bash) bash --norc --noprofile -c "s=\$EPOCHREALTIME; for ((i=0;i<$n;i++)); do . '$2'; done
               echo \$(( (\${EPOCHREALTIME/./} - \${s/./}) / $n ))" ;;
        zsh) zsh -f -c "zmodload zsh/datetime; source $work/compinit.zsh; s=\$EPOCHREALTIME
               for ((i=0;i<$n;i++)); do . '$2'; done; printf '%d\n' \$(( (EPOCHREALTIME - s) * 1e6 / $n ))" ;;
        fish) fish --no-config -c "set s (date +%s%N)
               for i in (seq $n); source '$2'; end
               math -s0 \"((\"(date +%s%N)\" - \$s) / 1000 / $n)\"" ;;
    esac
}

sh_file="$repo/shell/buckets.sh"
fish_file="$repo/shell/buckets.fish"
hf bash -n "bash: empty file" -n "bash: buckets.sh" \
    "bash --norc --noprofile -c '. $work/empty'" "bash --norc --noprofile -c '. $sh_file'"
hf zsh -n "zsh: empty file" -n "zsh: buckets.sh" \
    "zsh -f -c '. $work/empty'" "zsh -f -c '. $sh_file'"
hf zshc -n "zsh + compinit: empty file" -n "zsh + compinit: buckets.sh" \
    "zsh -f -c '. $work/compinit.zsh; . $work/empty'" "zsh -f -c '. $work/compinit.zsh; . $sh_file'"
hf fish -n "fish: empty file" -n "fish: buckets.fish" \
    "fish --no-config -c 'source $work/empty'" "fish --no-config -c 'source $fish_file'"

bin="$(python3 -c 'import sys, os; print(os.path.dirname(sys.executable))')"
tab() { # tab PATH "WORDS" CWORD: the environment bash's completion function passes to Click
    local var
    var="_$(basename "$1" | tr a-z- A-Z_)_COMPLETE"
    printf "env %s=bash_complete 'COMP_WORDS=%s' COMP_CWORD=%s %s" "$var" "$2" "$3" "$1"
}
hf tab -n "unmount-bucket te<TAB> (console script)" -n "mount-bucket te<TAB> (console script, cached listing)" \
    -n "mount-bucket --remote <TAB> (console script)" \
    "$(tab "$bin/unmount-bucket" "unmount-bucket te" 1)" \
    "$(tab "$bin/mount-bucket" "mount-bucket te" 1)" \
    "$(tab "$bin/mount-bucket" "mount-bucket --remote " 2)"
if command -v unmount-bucket >/dev/null && [ "$(command -v unmount-bucket)" != "$bin/unmount-bucket" ]; then
    hf tabpath -n "unmount-bucket te<TAB> (via PATH: $(command -v unmount-bucket))" \
        "$(tab unmount-bucket "unmount-bucket te" 1)"
fi

{
    echo "# Shell start-up and TAB latency"
    echo
    echo "Generated by \`bench/shell_startup.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "Machine: $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //') ($(nproc) CPUs)."
    echo "Versions: $(bash --version | head -1 | sed 's/ (.*//'), $(zsh --version | cut -d' ' -f1-2), $(fish --version | sed 's/, version//'), $(hyperfine --version), Python $(python3 -c 'import platform; print(platform.python_version())'), Click $(python3 -c 'import importlib.metadata as m; print(m.version("click"))')."
    echo
    echo "## Sourcing cost: a whole shell process, with the file against an empty file"
    echo
    table --added bash zsh zshc fish
    echo
    echo "Process start-up noise on a busy machine is larger than the file's cost: the loop below,"
    echo "which sources the file 200 times inside one shell, is the precise figure."
    echo
    echo "## Sourcing cost measured inside one shell (200 sourcings, mean per sourcing)"
    echo
    echo "| Shell | empty file [µs] | buckets file [µs] |"
    echo "|:---|---:|---:|"
    echo "| bash | $(loop bash "$work/empty") | $(loop bash "$sh_file") |"
    echo "| zsh (compinit loaded: completions registered now) | $(loop zsh "$work/empty") | $(loop zsh "$sh_file") |"
    echo "| fish | $(loop fish "$work/empty") | $(loop fish "$fish_file") |"
    echo
    echo "## TAB latency (Click's completion protocol, no network)"
    echo
    echo "What a TAB costs is one Python start: the shell side adds a fork and a few builtins."
    echo "Python's own start-up on this machine: $(python3 - <<'PY'
import statistics, subprocess, sys, time
t = []
for _ in range(30):
    s = time.perf_counter(); subprocess.run([sys.executable, "-c", "pass"]); t.append(time.perf_counter() - s)
print(f"{statistics.median(t) * 1e3:.0f} ms (median of 30 runs of python -c pass)")
PY
)."
    echo
    if [ -f "$work/tabpath.json" ]; then table tab tabpath; else table tab; fi
} >"$out"
echo "wrote $out"
