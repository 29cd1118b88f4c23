#!/usr/bin/env bash
# The BERT-CRF paper's ablation on the Chinese HealthNER dev split (this project's train/dev protocol)
# with m3e-small: CRF vs softmax head x layer-wise lr decay 1.0 / 0.9 / 0.8333 / 0.77 (k = 1, 1.1,
# 1.2, 1.3), 3 epochs, batch 16, base lr 4e-5. Collects strict micro F1 and the time per epoch into
# a Markdown table ($OUT/ner_ablation.md). Hours on 2 CPU cores: every run of the full setting is
# 3 epochs over 8,239 sentences.
#
# Settings (environment variables, defaults = the full ablation):
#   OUT=runs/bench/ner_ablation   HEADS="crf softmax"   DECAYS="1.0 0.9 0.8333 0.77"
#   EPOCHS=3  BATCH_SIZE=16  LEARNING_RATE=4e-5  MODEL=moka-ai/m3e-small
#   MAX_TRAIN_SAMPLES, MAX_EVAL_SAMPLES, NUM_HIDDEN_LAYERS: unset = all (set them for a quick check)
#   RESUME=1: skip a run whose metrics.json already exists (0: run it again)
#   EXTRA_ARGS: more `train.py ner` flags, e.g. "--data-dir DIR"
#
# A quick check of the script itself (a minute):
#   MAX_TRAIN_SAMPLES=32 MAX_EVAL_SAMPLES=16 EPOCHS=1 NUM_HIDDEN_LAYERS=1 DECAYS="1.0 0.8333" \
#     OUT=runs/ner_ablation_smoke bash benchmarks/ner_ablation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/bench/ner_ablation}
HEADS=${HEADS:-crf softmax}
DECAYS=${DECAYS:-1.0 0.9 0.8333 0.77}
EPOCHS=${EPOCHS:-3}
BATCH_SIZE=${BATCH_SIZE:-16}
LEARNING_RATE=${LEARNING_RATE:-4e-5}
MODEL=${MODEL:-moka-ai/m3e-small}
RESUME=${RESUME:-1}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

options=(--model "$MODEL" --epochs "$EPOCHS" --batch-size "$BATCH_SIZE" --learning-rate "$LEARNING_RATE"
         --report-to none)
[[ -n ${MAX_TRAIN_SAMPLES:-} ]] && options+=(--max-train-samples "$MAX_TRAIN_SAMPLES")
[[ -n ${MAX_EVAL_SAMPLES:-} ]] && options+=(--max-eval-samples "$MAX_EVAL_SAMPLES")
[[ -n ${NUM_HIDDEN_LAYERS:-} ]] && options+=(--num-hidden-layers "$NUM_HIDDEN_LAYERS")
# shellcheck disable=SC2206
[[ -n ${EXTRA_ARGS:-} ]] && options+=($EXTRA_ARGS)

mkdir -p "$OUT"
runs=()
for head in $HEADS; do
  for decay in $DECAYS; do
    run="$OUT/${head}_decay_${decay}"
    runs+=("$run")
    if [[ $RESUME == 1 && -f $run/metrics.json ]]; then
      echo "== $run: done before (RESUME=1), kept =="
      continue
    fi
    echo "== head $head, layer decay $decay -> $run =="
    $PY train.py ner --output-dir "$run" --head "$head" --layer-decay "$decay" "${options[@]}" 2>&1 \
      | grep -v "it/s\]\|s/it\]" | tee "$run.log" | tail -n 20
  done
done

$PY - "$OUT/ner_ablation.md" "${runs[@]}" <<'EOF'
import json
import sys
from pathlib import Path

table, runs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
lines = [
    "| head | layer decay | k | strict micro F1 | precision | recall | macro F1 | s / epoch | train sentences | eval sentences |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
for run in runs:
    m = json.loads((run / "metrics.json").read_text())
    args = json.loads((run / "training_args.json").read_text())
    decay = float(args["layer_decay"])
    lines.append(
        f"| {args['head']} | {decay:g} | {1 / decay:.2f} | {m['ner_f1_micro']:.4f} | "
        f"{m['ner_precision_micro']:.4f} | {m['ner_recall_micro']:.4f} | {m['ner_f1_macro']:.4f} | "
        f"{m['train_seconds_per_epoch']:.1f} | {m['num_train_sentences']} | {m['num_eval_sentences']} |"
    )
first = json.loads((runs[0] / "training_args.json").read_text())
note = (
    f"\nModel {first['model']}, {first['epochs']} epochs, batch {first['batch_size']}, base lr "
    f"{first['learning_rate']}, max length {first['max_length']}; strict entity-level scores on the "
    "evaluation split (HealthNER dev of this project's train/dev protocol unless --dataset was given).\n"
)
table.write_text("\n".join(lines) + "\n" + note, encoding="utf-8")
print("\n".join(lines) + "\n" + note)
print(f"written to {table}")
EOF
