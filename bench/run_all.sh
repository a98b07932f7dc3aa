#!/usr/bin/env bash
# Every figure in docs/benchmarks.md comes from this script. Needs ../shared/datasets.
# Usage: bash bench/run_all.sh   (about 75 minutes on 2 cores, half of it training the generator; logs in bench/results/)
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

echo "== out-of-scope on our own question set (data/out_of_scope): the demo's classifier, and the dev-split study"
$BIN/python bench/bench_oos.py | tail -1 | tee "$OUT/bench_oos.json"

echo "== retrieval through the CLI: Bitext 80/20 split"
$BIN/python bench/split.py "$SHARED/bitext/train.csv" --out "$OUT/bitext"
$BIN/csbot eval retrieval --corpus "$OUT/bitext/train.csv" --test "$OUT/bitext/test.csv" \
    --report "$OUT/bitext/report" | tail -1 | tee "$OUT/eval_retrieval_bitext.json"

echo "== search latency at 100k units (synthetic vectors)"
$BIN/python bench/bench_retrieval_scale.py | tee "$OUT/bench_retrieval_scale.log"

echo "== HTTP service: 50 conversations x 20 turns at once (errors, lost messages, turn p50/p95), then streaming first-text latency"
$BIN/python bench/bench_serve_load.py --workspace "$OUT/serve-ws" --workers 1 | tee "$OUT/bench_serve_load_w1.log"
$BIN/python bench/bench_serve_load.py --workspace "$OUT/serve-ws" --workers 2 | tee "$OUT/bench_serve_load_w2.log"

echo "== generation: a scratch GPT-2 trained on the Bitext train split within 30 minutes (the defaults),"
echo "   decoding chosen on the development split, the test split scored once per sampling seed"
RUN="$OUT/gen-bitext" OUT="$OUT/generation" SPLIT="$OUT/bitext" BIN=$BIN SHARED=$SHARED bash bench/bench_generation_quality.sh \
    | tail -1 | tee "$OUT/generation_quality.json"

echo "== decoding speed: our decoder vs transformers.pipeline, same model and prompts"
$BIN/csbot bench generation --model "$OUT/gen-bitext/final" --pairs "$OUT/gen-bitext/pairs" | tail -1 | tee "$OUT/bench_generation.json"

echo "== the demo's generator: a 5-minute round judged on data/heldout.jsonl, and the agreement-floor study"
$BIN/python bench/bench_demo_generator.py --minutes 5 | tail -1 | tee "$OUT/bench_demo_generator.json"

echo "== HTTP service with the Bitext GPT-2 promoted: micro-batching off vs on"
BATCH_WS="$OUT/serve-ws-gpt2"
[ -f "$BATCH_WS/workspace.json" ] || $BIN/csbot build --data data --workspace "$BATCH_WS"
MODEL_ID=$($BIN/csbot models add "$OUT/gen-bitext/final" --workspace "$BATCH_WS" | tail -1 | $BIN/python -c "import json,sys; print(json.load(sys.stdin)['id'])")
$BIN/csbot models promote "$MODEL_ID" --workspace "$BATCH_WS" > /dev/null
for mode in "off --workers 2" "on"; do
    $BIN/python bench/bench_serve_load.py --workspace "$BATCH_WS" --batching $mode --conversations 20 --turns 10 \
        | tail -1 | tee "$OUT/bench_serve_load_batching_${mode%% *}.json"
done

echo "== memory: one replica (retrieval, then the Bitext GPT-2 promoted) and a 1-million-unit index"
$BIN/python bench/bench_memory.py --model "$OUT/gen-bitext/final" | tail -1 | tee "$OUT/bench_memory.json"

echo "== one turn alone, by stage (torch and ONNX encoders, the Bitext GPT-2 promoted), and the encoder alone"
$BIN/python bench/bench_turn.py --workspace "$OUT/serve-ws" --turns 200 --generator "$OUT/gen-bitext/final" --backends torch,onnx | tail -1 | tee "$OUT/bench_turn.json"
$BIN/python bench/bench_encoder.py --rounds 2 --threads 1 | tail -1 | tee "$OUT/bench_encoder.json"

echo "== several replicas behind HAProxy: 200 customers, 1/2/3 replicas, kill -9 of one"
$BIN/python bench/bench_replicas.py --workspace "$OUT/serve-ws" --kill | tail -1 | tee "$OUT/bench_replicas.json"

echo "== the store's write rate and size (one SQLite file, 1/2/4 writer processes)"
$BIN/python bench/bench_store.py --conversations 2000 --writers 1 2 4 | tail -1 | tee "$OUT/bench_store.json"

echo "== learning loop: a round on more logged conversations vs a round on fewer (3 minutes each)"
$BIN/python bench/bench_learning_loop.py --minutes 3 | tail -1 | tee "$OUT/bench_learning_loop.json"

echo "== PII scrubbing: recall and precision on our labelled lines and the ABCD sample"
$BIN/python bench/bench_pii.py | tail -1 | tee "$OUT/bench_pii.json"
