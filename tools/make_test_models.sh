#!/bin/sh
# tools/make_test_models.sh GENMODEL OUTDIR SRCDIR [default]
#
# Generates embedkit's test model set (RANDOM weights, see models/README.md)
# into OUTDIR with ek-genmodel.  With the single word `default` as fourth
# argument only the bundled default model is made (what `make run` uses).
#
# This list is the one source of truth for the generated models:
# tools/ref/make_golden_embeddings.py runs this script and reads each model's
# arguments back from its stamp, so the golden vectors always describe these
# exact models.  A model is regenerated only when its arguments or the
# generator binary changed (the stamp OUTDIR/NAME/.genmodel-stamp holds both),
# so reruns take milliseconds.  Models are written to NAME.tmp and renamed,
# so an interrupted run never leaves a half-written model behind.
set -eu

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: $0 GENMODEL OUTDIR SRCDIR [default]" >&2
    exit 2
fi
GEN=$1
OUT=$2
SRC=$3
ONLY=${4:-all}
VOCAB=$SRC/models/vocab

if [ ! -x "$GEN" ]; then
    echo "make_test_models: generator $GEN not found (build target ek-genmodel)" >&2
    exit 1
fi
if [ ! -f "$VOCAB/vocab.txt" ]; then
    echo "make_test_models: vocabulary $VOCAB/vocab.txt not found" >&2
    exit 1
fi
GEN_SUM=$(cksum < "$GEN")
mkdir -p "$OUT"

# model NAME ARGS... : (re)generate OUT/NAME unless its stamp matches.
model() {
    name=$1
    shift
    want="args: $*
genmodel: $GEN_SUM"
    stamp=$OUT/$name/.genmodel-stamp
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    rm -rf "$OUT/$name.tmp"
    "$GEN" --out "$OUT/$name.tmp" --vocab-dir "$VOCAB" "$@"
    printf '%s\n' "$want" > "$OUT/$name.tmp/.genmodel-stamp"
    rm -rf "$OUT/$name"
    mv "$OUT/$name.tmp" "$OUT/$name"
}

# The bundled default: all-MiniLM-L6-v2's shape and modules (mean + Normalize).
model default --shape minilm-l6 --seed 42 --pooling mean
[ "$ONLY" = default ] && exit 0
if [ "$ONLY" != all ]; then
    echo "make_test_models: unknown selection '$ONLY' (only 'default')" >&2
    exit 2
fi

# One tiny model per pooling mode (each with Normalize).
model tiny-cls --shape tiny --seed 1 --pooling cls
model tiny-mean --shape tiny --seed 2 --pooling mean
model tiny-max --shape tiny --seed 3 --pooling max
model tiny-mean-sqrt --shape tiny --seed 4 --pooling mean_sqrt_len_tokens
model tiny-weightedmean --shape tiny --seed 5 --pooling weightedmean
model tiny-lasttoken --shape tiny --seed 6 --pooling lasttoken

# Modules after pooling.
model tiny-dense --shape tiny --seed 7 --pooling mean --dense 24:tanh
model tiny-nonorm --shape tiny --seed 8 --pooling mean --no-normalize
model tiny-mean-max --shape tiny --seed 11 --pooling mean,max

# Storage variants of tiny-mean (seed 2): the same underlying weights, so
# their embeddings equal tiny-mean's (exactly for shards / prefix /
# tokenizer, up to the rounding of the weights for f16 / bf16).
model tiny-f16 --shape tiny --seed 2 --pooling mean --dtype f16
model tiny-bf16 --shape tiny --seed 2 --pooling mean --dtype bf16
model tiny-sharded --shape tiny --seed 2 --pooling mean --shards 3
model tiny-bert-prefix --shape tiny --seed 2 --pooling mean --bert-prefix
model tiny-no-tokjson --shape tiny --seed 2 --pooling mean --no-tokenizer-json

# Prompts with include_prompt false: prompt tokens are left out of pooling.
model tiny-prompt --shape tiny --seed 9 --pooling mean --prompts --no-include-prompt
model tiny-prompt-multi --shape tiny --seed 10 --pooling cls,mean,weightedmean,lasttoken --prompts --no-include-prompt

# Short max_seq_length: most inputs are truncated.
model tiny-maxlen --shape tiny --seed 13 --pooling mean --max-seq-length 24

# The sentence-transformers 6 file layout: pooling_mode list (concatenated in
# list order: mean then max), max_seq_length in tokenizer_config.json, two
# Dense layers (relu, identity), Normalize with its own config.json.
model tiny-st6 --shape tiny --seed 12 --st-format v6 --pooling mean,max --dense 48:relu --dense 16:identity --max-seq-length 64
