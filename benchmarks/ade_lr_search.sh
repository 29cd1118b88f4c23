#!/usr/bin/env bash
# Learning-rate search for an encoder on ADE, on a sample that never touches fold 0's test part (issue 16,
# BENCHMARKS 10.4): `train.py joint` on the first TRAIN_SAMPLES sentences of fold 0's train file, scored on its
# last DEV_SAMPLES sentences (a dev set carved from fold 0's train part), once per learning rate. The setting of
# 10.4's fold-0 run: no negative sentences, gold-pair relation negatives, seed 42.
#   MODEL=all-mpnet-base-v2 (after `make mpnet`)   LRS="2e-5 5e-5 1e-4"   EPOCHS=3
#   TRAIN_SAMPLES=1000   DEV_SAMPLES=500   OUT=runs/bench/ade_lr_search   RESUME=1 (keep finished runs)
# About 7-8 min per learning rate for all-mpnet-base-v2 on 2 quiet CPU cores. Prints a Markdown table and writes
# OUT/lr_search.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-all-mpnet-base-v2}
LRS=${LRS:-2e-5 5e-5 1e-4}
EPOCHS=${EPOCHS:-3}
TRAIN_SAMPLES=${TRAIN_SAMPLES:-1000}
DEV_SAMPLES=${DEV_SAMPLES:-500}
OUT=${OUT:-runs/bench/ade_lr_search}
RESUME=${RESUME:-1}
DATA=${ADE_CORPUS_DIR:-../shared/data/ade_corpus_v2}/spert_10fold/ade_split_0_train.json
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

mkdir -p "$OUT"
for lr in $LRS; do
  dir="$OUT/lr_$lr"
  if [[ $RESUME == 1 && -f $dir/metrics.json ]]; then
    echo "== $dir: done before (RESUME=1), kept =="
    continue
  fi
  echo "== $dir =="
  $PY train.py joint --model "$MODEL" --dataset "$DATA" --train-split "train[:$TRAIN_SAMPLES]" \
    --eval-split "train[-$DEV_SAMPLES:]" --relation-negatives gold-pairs --epochs "$EPOCHS" --learning-rate "$lr" \
    --seed 42 --report-to none --overwrite-output-dir --output-dir "$dir" 2>&1 \
    | grep -v "it/s\]\|s/it\]" > "$dir.log"
  tail -n 3 "$dir.log"
done

$PY - "$OUT" $LRS <<'EOF'
import json
import sys
from pathlib import Path

out, lrs = Path(sys.argv[1]), sys.argv[2:]
keys = ["ner_f1_micro", "ner_f1_macro", "re_f1_strict", "re_f1_gold_entities"]
lines = ["| lr | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
for lr in lrs:
    scores = json.loads((out / f"lr_{lr}" / "metrics.json").read_text())["overlap_removed"]
    lines.append(f"| {lr} | " + " | ".join(f"{scores[key]:.4f}" for key in keys) + " |")
table = "\n".join(lines)
(out / "lr_search.md").write_text(f"dev (strict, overlapping entities removed):\n\n{table}\n")
print(table)
EOF
