#!/usr/bin/env bash
# Statistical test batteries on weightinit's generator output (results: docs/quality.md).
#
#   bench/quality/run_batteries.sh [-s SEED] [-d "DISTRIBUTIONS"] [-o OUTDIR] [-q]
#
#   -s SEED           stream seed (default 1)
#   -d DISTRIBUTIONS  space-separated `weightinit stream --distribution` values
#                     (default "uniform32 float32-uniform normal-pit")
#   -o OUTDIR         where the reports go (default ./battery-results)
#   -q                quick: a few fast dieharder tests instead of `dieharder -a`
#
# Steps, each writing a report to OUTDIR:
#   1. `weightinit stream --seed SEED --distribution D | dieharder -a -g 200` for every D
#      (about an hour each on one core; a complete report already in OUTDIR is reused);
#   2. every WEAK or FAILED result re-run alone, once with seed SEED+1 and once in dieharder's
#      resolve-ambiguity mode (-Y 1 -k 2: p-samples are added until the result is clearly
#      PASSED or FAILED);
#   3. rngtest (rng-tools5): the FIPS 140-2 tests on 100000 blocks of 20000 bits, beside the same
#      run on /dev/urandom as a reference for the failure rate a perfect source shows;
#   4. ent: entropy, chi-square, mean, Monte Carlo pi and serial correlation of 64 MiB;
#   5. PractRand's RNG_test, only if it is on PATH (Debian packages neither PractRand nor
#      TestU01).
#
# Needs: weightinit (or set WEIGHTINIT="python -m weightinit"), dieharder; optional rngtest, ent.
# Debian: apt-get install dieharder rng-tools5 ent
set -euo pipefail

SEED=1
DISTRIBUTIONS="uniform32 float32-uniform normal-pit"
OUT=battery-results
QUICK=0
while getopts "s:d:o:qh" opt; do
    case $opt in
        s) SEED=$OPTARG ;;
        d) DISTRIBUTIONS=$OPTARG ;;
        o) OUT=$OPTARG ;;
        q) QUICK=1 ;;
        *) sed -n '2,12p' "$0"; exit 2 ;;
    esac
done
read -r -a WI <<< "${WEIGHTINIT:-weightinit}"
HERE=$(cd "$(dirname "$0")" && pwd)
QUICK_TESTS="0 2 4 15 100 101"   # the reduced set of tests/test_battery.py
LAST_TEST=dab_monobit2          # the final test of `dieharder -a` (3.31.1): a report is complete

command -v dieharder > /dev/null || { echo "dieharder not found (apt-get install dieharder)" >&2; exit 1; }
"${WI[@]}" stream --seed 0 --count 1 > /dev/null || { echo "cannot run ${WI[*]} stream" >&2; exit 1; }
mkdir -p "$OUT"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stream() {  # stream SEED DISTRIBUTION [extra args]
    local seed=$1 dist=$2
    shift 2
    "${WI[@]}" stream --seed "$seed" --distribution "$dist" "$@"
}

summary() {  # PASSED / WEAK / FAILED counts of a dieharder report
    awk -F'|' 'NF == 6 && $1 !~ /#|test_name/ {gsub(/ /, "", $6); n[$6]++; t++}
               END {printf "%d results: %d PASSED, %d WEAK, %d FAILED\n", t, n["PASSED"], n["WEAK"], n["FAILED"]}' "$1"
}

# ---------------------------------------------------------------- 1-2. dieharder
for dist in $DISTRIBUTIONS; do
    if [ "$QUICK" = 1 ]; then
        report="$OUT/dieharder-quick-$dist-seed$SEED.txt"
        : > "$report"
        for t in $QUICK_TESTS; do
            log "dieharder -d $t on $dist (seed $SEED)"
            stream "$SEED" "$dist" | dieharder -d "$t" -g 200 >> "$report"
        done
    else
        report="$OUT/dieharder-a-$dist-seed$SEED.txt"
        if [ -s "$report" ] && grep -q "$LAST_TEST" "$report"; then
            log "reusing the complete $report"
        else
            log "dieharder -a on $dist (seed $SEED): about an hour"
            start=$(date +%s)
            stream "$SEED" "$dist" | dieharder -a -g 200 > "$report.part"
            mv "$report.part" "$report"
            log "done in $(( $(date +%s) - start )) s"
        fi
    fi
    echo "$report: $(summary "$report")"

    rerun="${report%.txt}-rerun.txt"
    : > "$rerun"
    awk -F'|' 'NF == 6 && ($6 ~ /WEAK|FAILED/) {gsub(/ /, "", $1); gsub(/ /, "", $2); print $1, $2}' \
        "$report" | sort -u | while read -r name ntup; do
        for mode in seed ra; do
            if [ "$mode" = seed ]; then
                s=$((SEED + 1)); extra=()
                label="seed $s"
            else
                s=$SEED; extra=(-Y 1 -k 2)
                label="seed $s, -Y 1 -k 2"
            fi
            log "re-run $name ntup $ntup on $dist ($label)"
            {
                echo "# $name ntup=$ntup, $label"
                # (some tests report several ntup values per run: keep the one re-examined)
                stream "$s" "$dist" < /dev/null | dieharder -d "$name" -n "$ntup" -g 200 "${extra[@]}" \
                    | awk -F'|' -v t="$ntup" 'NF == 6 && $1 !~ /#|test_name/ && $2 + 0 == t'
            } >> "$rerun"
        done
    done
    [ -s "$rerun" ] && { echo "$rerun:"; cat "$rerun"; }
done

# ---------------------------------------------------------------- 3. rngtest (FIPS 140-2)
if command -v rngtest > /dev/null; then
    blocks=100000   # 20000 bits = 625 words each (+1 block: rngtest first reads 32 bits)
    for dist in $DISTRIBUTIONS; do
        log "rngtest on $blocks blocks of $dist"
        stream "$SEED" "$dist" --count $(((blocks + 1) * 625)) \
            | rngtest -c "$blocks" > /dev/null 2> "$OUT/rngtest-$dist-seed$SEED.txt" || true
        grep -E "successes|failures|Monobit|Poker|Runs|Long run|Continuous" "$OUT/rngtest-$dist-seed$SEED.txt"
    done
    log "rngtest on $blocks blocks of /dev/urandom (reference)"
    head -c $(((blocks + 1) * 2500)) /dev/urandom | rngtest -c "$blocks" > /dev/null 2> "$OUT/rngtest-urandom.txt" || true
    grep -E "successes|failures" "$OUT/rngtest-urandom.txt"
fi

# ---------------------------------------------------------------- 4. ent
if command -v ent > /dev/null; then
    for dist in $DISTRIBUTIONS; do
        log "ent on 64 MiB of $dist"
        stream "$SEED" "$dist" --count $((1 << 24)) > "$OUT/ent-input.bin"
        { echo "== bytes"; ent "$OUT/ent-input.bin"; echo "== bits"; ent -b "$OUT/ent-input.bin"; } \
            > "$OUT/ent-$dist-seed$SEED.txt"
        rm -f "$OUT/ent-input.bin"
    done
fi

# ---------------------------------------------------------------- 5. PractRand (if installed)
if command -v RNG_test > /dev/null; then
    for dist in $DISTRIBUTIONS; do
        log "PractRand RNG_test stdin32 on $dist up to ${PRACTRAND_TLMAX:-64GB}"
        stream "$SEED" "$dist" | RNG_test stdin32 -tlmax "${PRACTRAND_TLMAX:-64GB}" \
            > "$OUT/practrand-$dist-seed$SEED.txt" || true
    done
else
    log "PractRand (RNG_test) not on PATH: skipped"
fi

if [ "$QUICK" = 0 ]; then  # markdown tables as in docs/quality.md
    for dist in $DISTRIBUTIONS; do
        f="$OUT/dieharder-a-$dist-seed$SEED.txt"
        python3 "$HERE/dieharder_table.py" "$f" "${f%.txt}-rerun.txt" > "${f%.txt}.md"
    done
fi
log "reports in $OUT"
