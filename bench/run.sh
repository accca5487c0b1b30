#!/bin/sh
# Run the benchmark programs side by side and print medians and ratios.
#
#   bench/run.sh PROGRAM...      (what `make bench` does, from the build dir)
#
# Each program lists its workloads (--list-workloads) and implementations
# (--list-impls) and prints "<bench> <workload> <impl> <ops/s>" per run.
# Runs are interleaved -- run 1 of every implementation, then run 2, ... --
# so that noise on a shared machine hits all of them alike; the table shows
# the median of BENCH_RUNS runs (default 5) and its ratio to raw libevent
# and to the bare-epoll floor (higher is better: 1.00 = as fast).
#
# Environment: BENCH_RUNS (runs per implementation), BENCH_ARGS (extra
# options for every program, e.g. "--min-ms 100").
set -u

if [ $# -eq 0 ]; then
    echo "usage: $0 PROGRAM..." >&2
    exit 2
fi
runs=${BENCH_RUNS:-5}
case $runs in
    '' | *[!0-9]*) echo "$0: BENCH_RUNS must be a number" >&2; exit 2 ;;
esac
[ "$runs" -ge 1 ] || runs=1

tmp=$(mktemp "${TMPDIR:-/tmp}/bench.XXXXXX") || exit 1
trap 'rm -f "$tmp"' EXIT INT TERM
status=0
start=$(date +%s)

for prog in "$@"; do
    case $prog in
        */*) ;;
        *) prog=./$prog ;;
    esac
    if [ ! -x "$prog" ]; then
        echo "$0: $prog: not found or not executable" >&2
        status=1
        continue
    fi
    workloads=$("$prog" --list-workloads) || { status=1; continue; }
    impls=$("$prog" --list-impls) || { status=1; continue; }
    for w in $workloads; do
        echo "$(basename "$prog") $w: $runs runs of" $impls >&2
        r=0
        while [ "$r" -lt "$runs" ]; do
            for impl in $impls; do
                # shellcheck disable=SC2086  # BENCH_ARGS is a word list
                if ! "$prog" --workload "$w" --impl "$impl" ${BENCH_ARGS:-} >>"$tmp"; then
                    echo "$0: $prog --workload $w --impl $impl failed" >&2
                    status=1
                fi
            done
            r=$((r + 1))
        done
    done
done

# Sort by (bench, workload, impl, value), take each group's median (the
# mean of the two middle values for an even count), then print the groups
# of one workload together with their ratios.  Rows keep first-seen order.
awk '{ print NR, $0 }' "$tmp" | sort -k2,2 -k3,3 -k4,4 -k5,5g | awk '
    function flush() {
        if (n == 0) return
        m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        med[key] = m; cnt[key] = n
        n = 0
    }
    {
        k = $2 " " $3 " " $4
        if (k != key) { flush(); key = k }
        v[++n] = $5
        if (!(k in first) || $1 < first[k]) first[k] = $1
    }
    END {
        flush()
        for (k in med) print first[k], k, med[k], cnt[k]
    }' | sort -n | awk '
    {
        wl = $2 " " $3
        if (!(wl in seen)) { seen[wl] = 1; order[++nw] = wl }
        rows[wl] = rows[wl] $4 " " $5 " " $6 "\n"
        if ($4 == "libevent") base[wl] = $5
        if ($4 == "epoll") floor[wl] = $5
    }
    END {
        printf "%-20s %-17s %14s %11s %9s %5s\n", "workload", "impl", "median ops/s", "vs libevent", "vs epoll", "runs"
        for (i = 1; i <= nw; i++) {
            wl = order[i]
            split(rows[wl], lines, "\n")
            for (j = 1; lines[j] != ""; j++) {
                split(lines[j], f, " ")
                rb = (wl in base) && base[wl] > 0 ? sprintf("%.2f", f[2] / base[wl]) : "-"
                rf = (wl in floor) && floor[wl] > 0 ? sprintf("%.2f", f[2] / floor[wl]) : "-"
                printf "%-20s %-17s %14.0f %11s %9s %5d\n", wl, f[1], f[2], rb, rf, f[3]
            }
        }
    }'

echo "(median of $runs runs each; ratios > 1 are faster than the reference; $(($(date +%s) - start)) s in all)"
exit $status
