#!/usr/bin/env bash
# Every figure in docs/benchmarks.md comes from this script. Needs ../shared/datasets.
# Usage: bash bench/run_all.sh   (about 15 minutes on 2 cores; logs in bench/results/)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
SHARED=${SHARED:-../shared/datasets}
OUT=bench/results
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "== machine"; { nproc; lscpu | grep -E "Model name|Flags" | cut -c1-120; } | tee "$OUT/machine.txt"

echo "== intents: BANKING77, our classifier vs frozen MiniLM + logistic regression (same split, same run)"
$BIN/python bench/bench_intents.py --data "$SHARED/banking77/train.csv" | tee "$OUT/bench_intents.log"

echo "== intents through the CLI: BANKING77 80/20 split"
$BIN/python bench/split.py "$SHARED/banking77/train.csv" --out "$OUT/banking77"
$BIN/csbot eval intents --train "$OUT/banking77/train.csv" --test "$OUT/banking77/test.csv" \
    --report "$OUT/banking77/report" | tail -1 | tee "$OUT/eval_intents_banking77.json"

echo "== out-of-scope through the CLI: a third of BANKING77 intents held out as unknown"
$BIN/python bench/split.py "$SHARED/banking77/train.csv" --out "$OUT/banking77-oos" --holdout-intents 0.33 --oos-label OOS
$BIN/csbot eval intents --train "$OUT/banking77-oos/train.csv" --test "$OUT/banking77-oos/test.csv" \
    --oos-label OOS --report "$OUT/banking77-oos/report" | tail -1 | tee "$OUT/eval_intents_banking77_oos.json"

echo "== retrieval through the CLI: Bitext 80/20 split"
$BIN/python bench/split.py "$SHARED/bitext/train.csv" --out "$OUT/bitext"
$BIN/csbot eval retrieval --corpus "$OUT/bitext/train.csv" --test "$OUT/bitext/test.csv" \
    --report "$OUT/bitext/report" | tail -1 | tee "$OUT/eval_retrieval_bitext.json"

echo "== search latency at 100k units (synthetic vectors)"
$BIN/python bench/bench_retrieval_scale.py | tee "$OUT/bench_retrieval_scale.log"
