#!/usr/bin/env bash
# `make bench BENCH=ade-real-text`: ADE 10-fold cross-validation before and after the real-text work, the
# protocol of BENCHMARKS.md section "Real text". all-MiniLM-L6-v2, lr 1e-4, 5 epochs, seed 42.
#   before: --no-negatives --relation-negatives gold-pairs --no-sentence-gate (the literature's setting)
#   after:  the defaults (negatives 1:1 per epoch, sentence gate, predicted-entity relation negatives)
# Each run resumes at fold granularity (--resume-from latest): run the script again to go on. About 65 min
# (before) and 2 h (after) on 2 quiet CPU cores. ONLY=before|after runs one of them; FOLDS=N shortens to N folds;
# TRAIN_FOLDS="7 8 9" trains only those folds now (train.py --folds: the summary waits for every fold).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${OUT:-runs/bench}
FOLDS=${FOLDS:-10}
mkdir -p "$OUT"
common=(--model sentence-transformers/all-MiniLM-L6-v2 --cv "$FOLDS" --epochs 5 --learning-rate 1e-4
        --report-to none --resume-from latest ${TRAIN_FOLDS:+--folds $TRAIN_FOLDS})
if [[ ${ONLY:-before} == before ]]; then
  echo "== before: literature-only training data =="
  $PY train.py ade "${common[@]}" --no-negatives --relation-negatives gold-pairs --no-sentence-gate \
    --output-dir "$OUT/ade-cv-before" 2>&1 | grep -v "it/s\]" | tee "$OUT/ade-cv-before.log" | tail -n 25
fi
if [[ ${ONLY:-after} == after ]]; then
  echo "== after: negatives + predicted-entity relation negatives =="
  $PY train.py ade "${common[@]}" --output-dir "$OUT/ade-cv-after" 2>&1 | grep -v "it/s\]" \
    | tee "$OUT/ade-cv-after.log" | tail -n 25
fi
