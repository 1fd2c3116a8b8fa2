#!/bin/sh
# bench/plot.sh [RESULTS_DIR [PNG_DIR]]
#
# Draws the performance plots of docs/PERFORMANCE.md ("Characteristics") with gnuplot from the
# JSON that bench/collect_plots.sh writes (defaults: docs/plots/data -> docs/plots):
#
#   throughput_batch.png  forward_batch.jsonl   sequences/s vs batch size, per dtype
#   seq_length.png        embed_<dtype>.json    ms per batch vs sequence length (batch 1, 8)
#   latency_hist.png      embed_<dtype>.json    one sentence end to end: latency histogram
#   search_size.png       search.jsonl          search time vs index size, per storage type
#   isa.png               isa.jsonl             time with EK_ISA=avx2 relative to native
#
# Every plot's title names the command that produced its data and the machine (from
# machine.json; override with EK_PLOT_MACHINE="...").  Needs gnuplot (Debian: gnuplot-nox) and jq.
set -eu

IN=${1:-docs/plots/data}
OUT=${2:-docs/plots}
command -v gnuplot >/dev/null || { echo "plot: needs gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
command -v jq >/dev/null || { echo "plot: needs jq" >&2; exit 1; }
[ -d "$IN" ] || { echo "plot: no results directory $IN" >&2; exit 1; }
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

# Machine line for the titles.
if [ -n "${EK_PLOT_MACHINE:-}" ]; then
    MACHINE=$EK_PLOT_MACHINE
elif [ -f "$IN/machine.json" ]; then
    MACHINE=$(jq -r '
        def has(f): (.flags | split(" ") | index(f)) != null;
        "\(.cores)-vCPU \(.cpu)"
        + (if has("avx512_bf16") then ", AVX-512 BF16" else (if has("avx512f") then ", AVX-512" else ", AVX2" end) end)
        + (if has("avx512_vnni") then "/VNNI" else "" end)
        + (if has("amx_bf16") then ", AMX" else ", no AMX" end)
        + ", \(.os | sub(" GNU/Linux"; "") | sub(" \\(.*\\)"; "")), \(.compiler | capture("(?<v>[0-9]+\\.[0-9]+)\\.[0-9]+").v | "gcc " + .)"
        + ", oneDNN \(.onednn | sub("-.*"; ""))"
        + "; load avg \(.load_before | split(" ")[0]) -> \(.load_after | split(" ")[0])"' "$IN/machine.json")
else
    MACHINE="machine not recorded"
fi
THREADS=$(jq -r '.threads // 2' "$IN/machine.json" 2>/dev/null || echo 2)
MODEL=$(jq -r '.model // "build/models/default"' "$IN/machine.json" 2>/dev/null || echo build/models/default)

common() { # common OUTFILE
    cat <<EOF
set terminal pngcairo size 900,560 font "DejaVu Sans,10" noenhanced
set output "$1"
set grid lc rgb "#dddddd"
set key top left box opaque
set style line 1 lc rgb "#1f77b4" lw 2 pt 7 ps 1
set style line 2 lc rgb "#ff7f0e" lw 2 pt 5 ps 1
set style line 3 lc rgb "#2ca02c" lw 2 pt 9 ps 1.2
set style line 4 lc rgb "#1f77b4" lw 2 dt 2 pt 6 ps 1
set style line 5 lc rgb "#ff7f0e" lw 2 dt 2 pt 4 ps 1
set style line 6 lc rgb "#2ca02c" lw 2 dt 2 pt 8 ps 1.2
EOF
}

plotted=""

# 1. Throughput vs batch size.
if [ -f "$IN/forward_batch.jsonl" ]; then
    for d in f32 bf16 int8; do
        jq -r --arg d "$d" 'select(.dtype == $d) | "\(.batch) \(.seqs_per_s) \(.tokens_per_s) \(.p50_ms)"' \
            "$IN/forward_batch.jsonl" > "$TMP/batch_$d.dat"
    done
    seq=$(jq -r '.seq' "$IN/forward_batch.jsonl" | head -n1)
    { common "$OUT/throughput_batch.png"; cat <<EOF
set title "Forward pass throughput vs batch size (MiniLM-L6 shape, $seq tokens per sequence, $THREADS threads)\nek bench forward --model $MODEL --batch B --seq $seq --dtype D --threads $THREADS --json\n$MACHINE"
set xlabel "batch size (sequences per call)"
set ylabel "throughput (sequences/s)"
set y2label "throughput (tokens/s)"
set logscale x 2
set xtics (1,2,4,8,16,32,64,128)
set xrange [0.8:80]
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set key bottom right
set y2range [0:*]
set link y2 via y*$seq inverse y/$seq
set y2tics
set ytics nomirror
plot "$TMP/batch_f32.dat"  u 1:2 w lp ls 1 t "f32", \
     "$TMP/batch_bf16.dat" u 1:2 w lp ls 2 t "bf16", \
     "$TMP/batch_int8.dat" u 1:2 w lp ls 3 t "int8"
EOF
    } | gnuplot
    plotted="$plotted throughput_batch.png"
fi

# 2. Cost vs sequence length, and 3. latency histogram (from the embed grid).
if [ -f "$IN/embed_f32.json" ]; then
    for d in f32 bf16 int8; do
        f="$IN/embed_$d.json"
        [ -f "$f" ] || continue
        for b in 1 8 32; do
            jq -r --argjson b "$b" '.grid[] | select(.batch == $b)
                | "\(.seq) \(.latency.p50 / 1e6) \(.latency.p99 / 1e6) \(.tokens_per_s)"' \
                "$f" > "$TMP/seq_${d}_$b.dat"
        done
        # Histogram: bucket middle (ms), bucket bounds, fraction of calls.
        jq -r '.one_sentence.latency as $l | $l.buckets[]
            | "\((.[0] + .[1]) / 2e6) \(.[0] / 1e6) \(.[1] / 1e6) \(.[2] / $l.count)"' \
            "$f" > "$TMP/hist_$d.dat"
        jq -r '.one_sentence.latency
            | "\(.count) calls: p50 \(.p50 / 1e6 * 1000 | round / 1000) ms, p99 \(.p99 / 1e6 * 1000 | round / 1000) ms, max \(.max / 1e6 * 1000 | round / 1000) ms"' \
            "$f" > "$TMP/hist_$d.txt"
    done
    { common "$OUT/seq_length.png"; cat <<EOF
set title "Forward pass time vs sequence length (p50 per call, $THREADS threads)\nek bench all embed --model $MODEL --dtype D --threads $THREADS --json (grid)\n$MACHINE"
set xlabel "sequence length (tokens)"
set ylabel "time per call, p50 (ms)"
set logscale xy
set xtics (16,32,64,128,256)
set xrange [12:340]
set key top left
stats "$TMP/seq_f32_32.dat" u 2 every ::0::0 nooutput
a = STATS_min
plot "$TMP/seq_f32_1.dat"  u 1:2 w lp ls 4 t "f32, batch 1", \
     "$TMP/seq_bf16_1.dat" u 1:2 w lp ls 5 t "bf16, batch 1", \
     "$TMP/seq_int8_1.dat" u 1:2 w lp ls 6 t "int8, batch 1", \
     "$TMP/seq_f32_32.dat"  u 1:2 w lp ls 1 t "f32, batch 32", \
     "$TMP/seq_bf16_32.dat" u 1:2 w lp ls 2 t "bf16, batch 32", \
     "$TMP/seq_int8_32.dat" u 1:2 w lp ls 3 t "int8, batch 32", \
     [16:256] a*x/16 w l lc rgb "#888888" dt 3 t "time proportional to length (reference)"
EOF
    } | gnuplot
    plotted="$plotted seq_length.png"

    # x range: from just below the fastest bucket to 2x the slowest p99 (the max is in the key).
    lo=$(cat "$TMP"/hist_*.dat | awk 'NR == 1 || $2 < m { m = $2 } END { print m * 0.9 }')
    hi=$(for d in f32 bf16 int8; do [ -f "$IN/embed_$d.json" ] && jq -r '.one_sentence.latency.p99 / 1e6' "$IN/embed_$d.json"; done \
        | awk 'NR == 1 || $1 > m { m = $1 } END { print m * 2 }')
    { common "$OUT/latency_hist.png"; cat <<EOF
set title "Latency of one sentence end to end (ek_embed: tokenize + forward + pool + normalise, $THREADS threads)\nek bench all embed --model $MODEL --dtype D --threads $THREADS --json (one_sentence histogram)\n$MACHINE"
set xlabel "latency per call (ms, log scale; HDR buckets, 1.6% wide; axis cut at 2x the largest p99, max in the key)"
set xrange [$lo:$hi]
set xtics (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.2, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100)
set ylabel "fraction of calls per bucket"
set logscale x
set key top right
set yrange [0:*]
set offsets 0, 0, graph 0.25, 0
set style fill transparent solid 0.5 noborder
plot "$TMP/hist_f32.dat"  u 1:(\$4/2):2:3:(0):4 w boxxyerror lc rgb "#1f77b4" t "f32: $(cat "$TMP/hist_f32.txt")", \
     "$TMP/hist_bf16.dat" u 1:(\$4/2):2:3:(0):4 w boxxyerror lc rgb "#ff7f0e" t "bf16: $(cat "$TMP/hist_bf16.txt")", \
     "$TMP/hist_int8.dat" u 1:(\$4/2):2:3:(0):4 w boxxyerror lc rgb "#2ca02c" t "int8: $(cat "$TMP/hist_int8.txt")"
EOF
    } | gnuplot
    plotted="$plotted latency_hist.png"
fi

# 4. Search time vs index size.
if [ -f "$IN/search.jsonl" ]; then
    for q in 1 64; do
        jq -r --argjson q "$q" '. as $r | .results[] | select(.queries == $q)
            | "\($r.n) \(.f32.ms) \(.int8.ms) \(.binary_rescore.ms) \(.int8.recall_at_k) \(.binary_rescore.recall_at_k)"' \
            "$IN/search.jsonl" | sort -n > "$TMP/search_$q.dat"
    done
    dim=$(jq -r '.dim' "$IN/search.jsonl" | head -n1)
    k=$(jq -r '.k' "$IN/search.jsonl" | head -n1)
    { common "$OUT/search_size.png"; cat <<EOF
set title "Top-$k search time vs index size (random unit vectors, dim $dim, $THREADS threads, median of 3)\nek bench search --n N --dim $dim --queries 1,64 -k $k --repeat 3 --json\n$MACHINE"
set xlabel "index size (vectors of $dim dims)"
set ylabel "time per search call (ms)"
set logscale xy
set format x "%.0s%c"
set key bottom right
plot "$TMP/search_1.dat"  u 1:2 w lp ls 1 t "f32 exact, 1 query", \
     "$TMP/search_1.dat"  u 1:3 w lp ls 2 t "int8, 1 query", \
     "$TMP/search_1.dat"  u 1:4 w lp ls 3 t "binary + f32 rescore 100, 1 query", \
     "$TMP/search_64.dat" u 1:2 w lp ls 4 t "f32 exact, 64 queries", \
     "$TMP/search_64.dat" u 1:3 w lp ls 5 t "int8, 64 queries", \
     "$TMP/search_64.dat" u 1:4 w lp ls 6 t "binary + f32 rescore 100, 64 queries"
EOF
    } | gnuplot
    plotted="$plotted search_size.png"
fi

# 5. Device-specific (ISA) table as a bar chart: time with EK_ISA=avx2 / native time.
if [ -f "$IN/isa.jsonl" ]; then
    jq -r -s '
        def rows: map(
            if .bench == "forward" then
                {key: "forward f32 \(.batch)x\(.seq)", isa: .requested_isa, level: .isa, ms: .median_ms}
            else
                . as $r | .results[] | ({key: "search f32 n=\($r.n/1000)k q=\(.queries)", isa: $r.requested_isa, level: $r.isa, ms: .f32.ms},
                                       {key: "search int8 n=\($r.n/1000)k q=\(.queries)", isa: $r.requested_isa, level: $r.isa, ms: .int8.ms},
                                       {key: "search binary n=\($r.n/1000)k q=\(.queries)", isa: $r.requested_isa, level: $r.isa, ms: .binary_rescore.ms})
            end);
        rows | group_by(.key) | map({key: .[0].key,
            native: (map(select(.isa == "native"))[0]), avx2: (map(select(.isa == "avx2"))[0])})
        | map(select(.native and .avx2))
        | .[] | "\"\(.key)\" \(.native.ms) \(.avx2.ms) \(.avx2.ms / .native.ms) \(.native.level) \(.avx2.level)"' \
        "$IN/isa.jsonl" > "$TMP/isa.dat"
    native=$(awk 'NR==1{print $(NF-1)}' "$TMP/isa.dat" | tr -d '"')
    { common "$OUT/isa.png"; cat <<EOF
set title "Time with EK_ISA=avx2 relative to the native level ($native), $THREADS threads\nek bench forward --dtype f32 --iters 5 / ek bench search --n 100000 --repeat 3, each as is and with EK_ISA=avx2\n$MACHINE"
set ylabel "avx2 time / native time (higher = AVX-512 helps more)"
set xlabel "benchmark (native ms -> avx2 ms above each bar; forward in f32: bf16/int8 need AVX-512)"
set style fill solid 0.7 border -1
set boxwidth 0.6
set yrange [0:*]
set xtics rotate by -30 left
set bmargin 9
set rmargin 14
unset key
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "#cc0000" dt 2 lw 2
plot "$TMP/isa.dat" u 0:4:xtic(1) w boxes lc rgb "#1f77b4", \
     "" u 0:4:(sprintf("%.4g -> %.4g", \$2, \$3)) w labels offset 0,0.8 font ",8"
EOF
    } | gnuplot
    plotted="$plotted isa.png"
fi

[ -n "$plotted" ] || { echo "plot: nothing to plot in $IN" >&2; exit 1; }
echo "plot: wrote$plotted in $OUT" >&2
