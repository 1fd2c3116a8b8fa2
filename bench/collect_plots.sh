#!/bin/sh
# bench/collect_plots.sh [--ek EK] [--model DIR] [--threads T] [--out DIR]
#
# Runs the small set of benchmarks that feed bench/plot.sh and writes their JSON into DIR
# (default docs/plots/data).  A few minutes on a quiet 2-core machine:
#
#   forward_batch.jsonl   ek bench forward, seq 32, batch 1..64, per dtype (f32, bf16, int8)
#   embed_<dtype>.json    ek bench all embed: the batch (1, 8, 32, 128) x length (16..256)
#                         grid and one sentence end to end, with latency histograms, memory
#   memory_tiny-mean.json the same, --quick, for the tiny-mean model next to MODEL (memory)
#   search.jsonl          ek bench search --queries 1,64 -k 10, n = 10k .. 1M
#   isa.jsonl             the same forward / search runs with EK_ISA=avx2 and with the native
#                         level (the "isa" field tells which kernels ran)
#   threads.jsonl         forward (f32, int8; batch 1, 32 x 32 tokens) and search (100k) with
#                         1 thread and with --threads (a table, not plotted)
#   machine.json          CPU, flags, OS, compiler, oneDNN, load average before and after
#
# Then: bench/plot.sh DIR docs/plots
set -eu

EK=build/ek
MODEL=build/models/default
THREADS=2
OUT=docs/plots/data
while [ $# -gt 0 ]; do
    case $1 in
        --ek) EK=$2; shift 2 ;;
        --model) MODEL=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "collect_plots: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x "$EK" ] || { echo "collect_plots: $EK not found (build first)" >&2; exit 1; }
[ -d "$MODEL" ] || { echo "collect_plots: model $MODEL not found" >&2; exit 1; }
command -v jq >/dev/null || { echo "collect_plots: needs jq" >&2; exit 1; }
mkdir -p "$OUT"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_BEFORE=$(loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)

fwd() { # fwd B S DTYPE ITERS [env...]
    "$EK" bench forward --model "$MODEL" --batch "$1" --seq "$2" --dtype "$3" \
        --threads "$THREADS" --iters "$4" --warmup 2 --json
}

echo "collect_plots: forward, throughput vs batch size (seq 32)" >&2
: > "$OUT/forward_batch.jsonl"
for d in f32 bf16 int8; do
    for b in 1 2 4 8 16 32 64; do
        it=$((160 / b)); [ "$it" -ge 5 ] || it=5
        fwd "$b" 32 "$d" "$it" >> "$OUT/forward_batch.jsonl"
    done
done

echo "collect_plots: batch x length grid and latency histograms (ek bench all embed)" >&2
for d in f32 bf16 int8; do
    "$EK" bench all embed --model "$MODEL" --dtype "$d" --threads "$THREADS" --json \
        > "$OUT/embed_$d.json"
done

# A much smaller model for the memory-by-model-size table (not plotted).
tiny=$(dirname "$MODEL")/tiny-mean
if [ -d "$tiny" ]; then
    "$EK" bench all embed --model "$tiny" --dtype f32 --threads "$THREADS" --quick --json \
        > "$OUT/memory_tiny-mean.json"
fi

echo "collect_plots: search time vs index size" >&2
: > "$OUT/search.jsonl"
for n in 10000 30000 100000 300000 1000000; do
    "$EK" bench search --n "$n" --dim 384 --queries 1,64 -k 10 --repeat 3 \
        --threads "$THREADS" --json >> "$OUT/search.jsonl"
done

echo "collect_plots: ISA levels (native vs EK_ISA=avx2)" >&2
: > "$OUT/isa.jsonl"
for isa in native avx2; do
    if [ "$isa" = native ]; then set --; else set -- env EK_ISA="$isa"; fi
    for shape in "1 16" "8 32" "32 128"; do
        # shellcheck disable=SC2086
        "$@" "$EK" bench forward --model "$MODEL" --batch ${shape% *} --seq ${shape#* } \
            --dtype f32 --threads "$THREADS" --iters 5 --warmup 2 --json \
            | jq -c --arg req "$isa" '. + {requested_isa: $req}' >> "$OUT/isa.jsonl"
    done
    "$@" "$EK" bench search --n 100000 --dim 384 --queries 1,64 -k 10 --repeat 3 \
        --threads "$THREADS" --json \
        | jq -c --arg req "$isa" '. + {requested_isa: $req}' >> "$OUT/isa.jsonl"
done

echo "collect_plots: threads 1 vs $THREADS (forward, seq 32; search 100k)" >&2
: > "$OUT/threads.jsonl"
for t in 1 "$THREADS"; do
    for d in f32 int8; do
        for b in 1 32; do
            "$EK" bench forward --model "$MODEL" --batch "$b" --seq 32 --dtype "$d" \
                --threads "$t" --iters 10 --warmup 2 --json >> "$OUT/threads.jsonl"
        done
    done
    "$EK" bench search --n 100000 --dim 384 --queries 1,64 -k 10 --repeat 3 \
        --threads "$t" --json >> "$OUT/threads.jsonl"
done

LOAD_AFTER=$(loadavg)
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' \
    | grep -E '^(avx2|avx512f|avx512bw|avx512vl|avx512_bf16|avx512_vnni|avx512_vpopcntdq|amx_bf16|amx_int8)$' \
    | tr '\n' ' ' | sed 's/ $//')
# shellcheck disable=SC1091
os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")
cc=$(${CC:-gcc} --version 2>/dev/null | head -n1)
dnnl=$(dpkg-query -W -f '${Version}' libdnnl-dev 2>/dev/null || echo unknown)
jq -n --arg cpu "$cpu" --arg flags "$flags" --arg os "$os" --arg kernel "$(uname -r)" \
    --arg cc "$cc" --arg dnnl "$dnnl" --arg cores "$(nproc)" --arg t0 "$START" \
    --arg t1 "$END" --arg lb "$LOAD_BEFORE" --arg la "$LOAD_AFTER" \
    --arg model "$MODEL" --arg threads "$THREADS" \
    '{cpu: $cpu, flags: $flags, cores: ($cores|tonumber), os: $os, kernel: $kernel,
      compiler: $cc, onednn: $dnnl, model: $model, threads: ($threads|tonumber),
      start: $t0, "end": $t1, load_before: $lb, load_after: $la}' > "$OUT/machine.json"
echo "collect_plots: wrote $OUT (load average $LOAD_BEFORE before, $LOAD_AFTER after)" >&2
