#!/usr/bin/env bash
# Does domain-adaptive continual pre-training help? (issue 5; ClinicalBERT-style, `train.py mlm`)
#
# English: all-MiniLM-L6-v2 continued with masked LM on ADE-NEG + DRUG-DOSE + fold-0 train sentences,
#   fold-0 test sentences removed (--exclude-fold 0), then `train.py ade --fold 0` from the adapted and from
#   the unadapted encoder, once per seed. Reported: strict NER F1 and RE+ F1 (overlap removed), mean ± std.
# Chinese: m3e-small continued on the HealthNER `train` text (this project's train/dev protocol; the dev
#   sentences are not in it), then `train.py ner` (CRF head, evaluated on dev) from both, once per seed.
# Results: $OUT/mlm_effect.md (+ every run's metrics.json, the MLM runs' perplexity before/after).
#
# Full settings take many hours on 2 CPU cores (MLM: 3 epochs over ~20k sentences; then 2 x seeds x
# fine-tuning runs per language). Settings (environment variables, defaults = the full plan):
#   OUT=runs/bench/mlm_effect   LANGS="en zh"   SEEDS="1 2 3"
#   MLM_EPOCHS=3  MLM_BATCH_SIZE=32  MLM_LEARNING_RATE=5e-5   (train.py mlm)
#   MLM_MAX_TRAIN_SAMPLES, MLM_MAX_EVAL_SAMPLES: unset = all text (held-out share: 5 %)
#   FT_EPOCHS: unset = each task's paper default (ade 5, ner 3)
#   FT_MAX_TRAIN_SAMPLES, FT_MAX_EVAL_SAMPLES, NUM_HIDDEN_LAYERS: unset = all (set them for a quick check)
#   RESUME=1: skip a run whose metrics.json already exists (0: run it again)
#   MLM_EXTRA_ARGS, ADE_EXTRA_ARGS, NER_EXTRA_ARGS: more flags for the three commands
#
# A quick check of the script itself (a few minutes):
#   MLM_EPOCHS=1 MLM_MAX_TRAIN_SAMPLES=64 MLM_MAX_EVAL_SAMPLES=16 FT_EPOCHS=1 FT_MAX_TRAIN_SAMPLES=32 \
#     FT_MAX_EVAL_SAMPLES=16 NUM_HIDDEN_LAYERS=1 SEEDS=1 OUT=runs/mlm_effect_smoke bash benchmarks/mlm_effect.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/bench/mlm_effect}
LANGS=${LANGS:-en zh}
SEEDS=${SEEDS:-1 2 3}
MLM_EPOCHS=${MLM_EPOCHS:-3}
MLM_BATCH_SIZE=${MLM_BATCH_SIZE:-32}
MLM_LEARNING_RATE=${MLM_LEARNING_RATE:-5e-5}
RESUME=${RESUME:-1}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

mlm_options=(--epochs "$MLM_EPOCHS" --batch-size "$MLM_BATCH_SIZE" --learning-rate "$MLM_LEARNING_RATE"
             --report-to none)
[[ -n ${MLM_MAX_TRAIN_SAMPLES:-} ]] && mlm_options+=(--max-train-samples "$MLM_MAX_TRAIN_SAMPLES")
[[ -n ${MLM_MAX_EVAL_SAMPLES:-} ]] && mlm_options+=(--max-eval-samples "$MLM_MAX_EVAL_SAMPLES")
ft_options=(--report-to none)
[[ -n ${FT_EPOCHS:-} ]] && ft_options+=(--epochs "$FT_EPOCHS")
[[ -n ${FT_MAX_TRAIN_SAMPLES:-} ]] && ft_options+=(--max-train-samples "$FT_MAX_TRAIN_SAMPLES")
[[ -n ${FT_MAX_EVAL_SAMPLES:-} ]] && ft_options+=(--max-eval-samples "$FT_MAX_EVAL_SAMPLES")
if [[ -n ${NUM_HIDDEN_LAYERS:-} ]]; then
  mlm_options+=(--num-hidden-layers "$NUM_HIDDEN_LAYERS")
  ft_options+=(--num-hidden-layers "$NUM_HIDDEN_LAYERS")
fi
# shellcheck disable=SC2206
mlm_extra=(${MLM_EXTRA_ARGS:-})
# shellcheck disable=SC2206
ade_extra=(${ADE_EXTRA_ARGS:-})
# shellcheck disable=SC2206
ner_extra=(${NER_EXTRA_ARGS:-})

run() {  # run OUTPUT_DIR COMMAND...: skip when done before (RESUME=1), log to OUTPUT_DIR.log
  local dir=$1
  shift
  if [[ $RESUME == 1 && -f $dir/metrics.json ]]; then
    echo "== $dir: done before (RESUME=1), kept =="
    return
  fi
  echo "== $dir =="
  mkdir -p "$(dirname "$dir")"
  "$@" --output-dir "$dir" 2>&1 | grep -v "it/s\]\|s/it\]" | tee "$dir.log" | tail -n 15
}

mkdir -p "$OUT"
for lang in $LANGS; do
  if [[ $lang == en ]]; then
    base=sentence-transformers/all-MiniLM-L6-v2
    adapted="$OUT/en/minilm_ade_mlm"
    run "$adapted" $PY train.py mlm --model "$base" "${mlm_options[@]}" "${mlm_extra[@]}" \
      --dataset ade_corpus:negatives ade_corpus:drug_dose ade_corpus:fold_0:train --exclude-fold 0
    for seed in $SEEDS; do
      for variant in base adapted; do
        model=$base
        [[ $variant == adapted ]] && model=$adapted
        run "$OUT/en/ade_fold0_${variant}_seed$seed" $PY train.py ade --fold 0 --model "$model" --seed "$seed" \
          "${ft_options[@]}" "${ade_extra[@]}"
      done
    done
  elif [[ $lang == zh ]]; then
    base=moka-ai/m3e-small
    adapted="$OUT/zh/m3e_healthner_mlm"
    run "$adapted" $PY train.py mlm --model "$base" "${mlm_options[@]}" "${mlm_extra[@]}" \
      --dataset chinese_healthner:train
    for seed in $SEEDS; do
      for variant in base adapted; do
        model=$base
        [[ $variant == adapted ]] && model=$adapted
        run "$OUT/zh/ner_${variant}_seed$seed" $PY train.py ner --model "$model" --seed "$seed" \
          "${ft_options[@]}" "${ner_extra[@]}"
      done
    done
  else
    echo "unknown language '$lang' in LANGS (expected en, zh)" >&2
    exit 2
  fi
done

$PY - "$OUT" $LANGS <<'EOF'
import json
import statistics
import sys
from pathlib import Path

out, langs = Path(sys.argv[1]), sys.argv[2:]
plans = {
    "en": ("en/minilm_ade_mlm", "en/ade_fold0_{variant}_seed*", ["overlap_removed.ner_f1_micro", "overlap_removed.re_f1_strict"]),
    "zh": ("zh/m3e_healthner_mlm", "zh/ner_{variant}_seed*", ["ner_f1_micro", "ner_f1_macro"]),
}


def value(metrics: dict, key: str) -> float:
    for part in key.split("."):
        metrics = metrics[part]
    return float(metrics)


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {std:.4f} (n={len(values)})"


lines = []
for lang in langs:
    mlm_dir, pattern, keys = plans[lang]
    mlm = json.loads((out / mlm_dir / "metrics.json").read_text())
    lines += [
        f"### {lang}: continual pre-training ({mlm_dir})",
        "",
        f"held-out MLM loss {mlm['before']['mlm_loss']:.3f} -> {mlm['after']['mlm_loss']:.3f}, perplexity "
        f"{mlm['before']['perplexity']:.1f} -> {mlm['after']['perplexity']:.1f} "
        f"({mlm['after']['masked_tokens']} masked tokens, fixed masks); newly initialised head weights: "
        f"{len(mlm['newly_initialised_weights'])}",
        "",
        "| encoder | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for variant in ("base", "adapted"):
        runs = sorted(out.glob(pattern.format(variant=variant)))
        runs = [r for r in runs if (r / "metrics.json").is_file()]
        scores = [json.loads((r / "metrics.json").read_text()) for r in runs]
        lines.append(f"| {variant} | " + " | ".join(mean_std([value(s, k) for s in scores]) for k in keys) + " |")
    lines.append("")
table = out / "mlm_effect.md"
table.write_text("\n".join(lines) + "\n", encoding="utf-8")
print("\n".join(lines))
print(f"written to {table}")
EOF
