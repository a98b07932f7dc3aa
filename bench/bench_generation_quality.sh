#!/usr/bin/env bash
# The GPT-2 composer against retrieval on held-out Bitext rows, measured in one protocol:
#   1. split ../shared/datasets/bitext/train.csv 80/20 (seed 0): train.csv / test.csv;
#   2. train with the defaults alone: `csbot finetune train --corpus train.csv --out RUN --max-minutes 30`
#      (skipped when RUN/final exists: delete it to retrain);
#   3. choose the number of candidates on the development split (the run's validation pairs,
#      never trained on, their own rows left out of retrieval): the best ROUGE-L wins;
#   4. score the test split once with that choice, for each sampling seed (the candidates
#      after the first are samples), keeping report.json and samples.jsonl of each;
#   5. print a summary: mean and spread over the seeds, each gain's paired bootstrap interval.
# Usage: bash bench/bench_generation_quality.sh   (about 30 minutes of training and 25 of
# evaluation on 2 cores; results in bench/results/generation/)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
SHARED=${SHARED:-../shared/datasets}
SPLIT=${SPLIT:-bench/results/bitext}
RUN=${RUN:-runs/bitext}
OUT=${OUT:-bench/results/generation}
SEEDS=${SEEDS:-"0 1 2"}
CHOICES=${CHOICES:-"1 3 5"}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CSBOT_WORKSPACE=${CSBOT_WORKSPACE:-$OUT/no-workspace}
mkdir -p "$OUT"

[ -f "$SPLIT/train.csv" ] || $BIN/python bench/split.py "$SHARED/bitext/train.csv" --out "$SPLIT"

if [ ! -f "$RUN/final/csbot_model.json" ]; then
    echo "== training with the defaults, 30 minutes"
    { time $BIN/csbot finetune train --corpus "$SPLIT/train.csv" --out "$RUN" --max-minutes 30 --no-register; } \
        2>&1 | tail -4 | tee "$OUT/train.log"
fi

echo "== development split: candidates per reply in {$CHOICES}"
for c in $CHOICES; do
    $BIN/csbot eval generation --model "$RUN/final" --corpus "$SPLIT/train.csv" --test "$RUN/pairs" \
        --candidates "$c" --report "$OUT/dev-candidates-$c" | tail -1 > "$OUT/dev-candidates-$c.json"
done
best=$($BIN/python - "$OUT" $CHOICES <<'EOF'
import json, sys
out, choices = sys.argv[1], sys.argv[2:]
scores = {c: json.load(open(f"{out}/dev-candidates-{c}.json"))["rougeL_f1"] for c in choices}
print(max(choices, key=lambda c: (scores[c], -int(c))))  # ties: the cheaper decoding
EOF
)
echo "chosen on the development split: --candidates $best"

echo "== test split, --candidates $best, seeds: $SEEDS"
for s in $SEEDS; do
    $BIN/csbot eval generation --model "$RUN/final" --corpus "$SPLIT/train.csv" --test "$SPLIT/test.csv" \
        --candidates "$best" --seed "$s" --report "$OUT/test-seed-$s" | tail -1 > "$OUT/test-seed-$s.json"
done

$BIN/python - "$OUT" "$best" $CHOICES -- $SEEDS <<'EOF'
import json, statistics, sys
out, best = sys.argv[1], sys.argv[2]
rest = sys.argv[3:]
choices, seeds = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
dev = {c: json.load(open(f"{out}/dev-candidates-{c}.json")) for c in choices}
test = [json.load(open(f"{out}/test-seed-{s}.json")) for s in seeds]
keys = ["rougeL_f1", "retrieval_only_rougeL_f1", "retrieval_vote_rougeL_f1", "intent_first_retrieval_rougeL_f1",
        "fallback_rate", "live_fallback_rate", "candidate_invented_rate", "guard_caught_share", "invented_rate"]
def spread(values):
    values = [v for v in values if v is not None]
    return {"mean": round(statistics.fmean(values), 4), "min": min(values), "max": max(values)} if values else None
summary = {
    "dev": {c: {k: dev[c][k] for k in keys} for c in choices},
    "chosen_candidates": int(best),
    "test_seeds": [int(s) for s in seeds],
    "test": {k: spread([t[k] for t in test]) for k in keys},
    "test_gain_ci_per_seed": {s: t["gain_ci"] for s, t in zip(seeds, test)},
    "n_test": test[0]["n"],
    "n_dev": dev[choices[0]]["n"],
    "model": test[0]["model"],
    "machine": test[0]["machine"],
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary))
EOF
