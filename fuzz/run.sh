#!/usr/bin/env bash
# Runs Filet's fuzz targets, each for a bounded time, and reports executions and findings.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# Needs cargo-fuzz (installed here with `cargo install cargo-fuzz --locked` if missing)
# and a nightly toolchain for libFuzzer's sanitizer flags; without one, stable is used with
# RUSTC_BOOTSTRAP=1 (stable rustc ships the sanitizer runtimes; the variable only lets it
# accept -Z flags). Each run starts from the named seeds committed in fuzz/seeds/<target>/ and
# the repository's own inputs (examples/, the CAP files of proto/tests/data/cap/); the corpus
# it grows in fuzz/corpus/<target>/ is generated and not committed; crashes land in fuzz/artifacts/<target>/
# (commit the minimized ones, `cargo fuzz tmin`, under fuzz/artifacts-found/<target>/).
# Logs: fuzz/logs/<target>.log. Exit status 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")"

SECS="${1:-60}"
shift || true
ALL=(frame_decode alert_validate agreement_parse checkpoint_parse cap_parse audit_entry)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    TOOLCHAIN=(+nightly)
else
    echo "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    TOOLCHAIN=()
fi

mkdir -p logs
cargo "${TOOLCHAIN[@]}" fuzz build -O

failed=0
printf '%-18s %8s %14s %10s %s\n' target seconds executions exec/s result
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds+=("seeds/$t")
    case "$t" in
        agreement_parse) seeds+=(../examples) ;;
        alert_validate) seeds+=(../examples/alerts) ;;
        cap_parse) seeds+=(../proto/tests/data/cap) ;;
    esac
    log="logs/$t.log"
    if cargo "${TOOLCHAIN[@]}" fuzz run -O "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$SECS" -print_final_stats=1 -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        >"$log" 2>&1; then
        result="ok"
    else
        result="CRASH: $(ls -t "artifacts/$t" 2>/dev/null | head -1)"
        failed=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
    runs="${runs:-?}"
    secs="${secs:-$SECS}"
    rate="?"
    if [ "$runs" != "?" ] && [ "${secs:-0}" -gt 0 ]; then rate=$((runs / secs)); fi
    printf '%-18s %8s %14s %10s %s\n' "$t" "$secs" "$runs" "$rate" "$result"
done
exit "$failed"
