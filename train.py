"""One CLI for every training task; runs unchanged under ``python train.py`` and ``accelerate launch train.py``.

    python train.py ade --model all-MiniLM-L6-v2 --output-dir runs/ade --fold 0
    python train.py ade --model all-MiniLM-L6-v2 --output-dir runs/ade-cv --cv 10
    python train.py ner --model m3e-small --output-dir runs/ner --head crf --layer-decay 0.8333
    python train.py ade --output-dir runs/ade-lora --fold 0 --lora-r 8 --learning-rate 5e-4   # LoRA adapter
    python train.py mlm --output-dir runs/mlm --dataset ade_corpus:negatives --exclude-fold 0

``python train.py TASK --help`` documents every flag.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    max_length: int,
    model: str,
    layer_decay: float = 1.0,
    long_sentences: str = "cut and counted in the log",
) -> None:
    """Flags every training task shares (names fixed by the CLI contract in DESIGN.md).

    ``layer_decay`` is the task's default for ``--layer-decay``; ``long_sentences`` says in
    ``--max-length``'s help what the task does with longer sentences.
    """
    g = parser.add_argument_group("model and output")
    g.add_argument("--model", default=model, help=f"encoder name, Hub id or folder (default: {model})")
    g.add_argument(
        "--output-dir", required=True, help="where the model, tokenizer, metrics.json and arguments go"
    )
    g.add_argument(
        "--overwrite-output-dir",
        action="store_true",
        help="replace a run already in --output-dir (by default a finished or started run there is kept and "
        "this run refuses to start)",
    )
    g.add_argument(
        "--num-hidden-layers",
        type=positive_int,
        default=None,
        help="keep only the first N encoder layers (a quick way to a smaller model); default: all",
    )
    g.add_argument(
        "--data-dir",
        default=None,
        help="raw corpus folder (default: the corpus environment variable, then ../shared/data/...)",
    )
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=positive_int, default=epochs, help=f"training epochs (default: {epochs})")
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch_size,
        help=f"training batch size per process (default: {batch_size})",
    )
    g.add_argument(
        "--eval-batch-size",
        type=positive_int,
        default=64,
        help="evaluation batch size per process (default: 64)",
    )
    g.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=learning_rate,
        help=f"peak learning rate of the top encoder layer and the heads (default: {learning_rate})",
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=5e-3,
        help="AdamW weight decay; none on biases and norms (default: 5e-3, the paper's L2)",
    )
    g.add_argument(
        "--layer-decay",
        type=float,
        default=layer_decay,
        help="layer-wise lr decay: a layer's lr is the one above times this, so dividing by k is 1/k "
        f"(the BERT-CRF paper's k = 1.2 is 0.8333); 1.0 = off (default: {layer_decay:.4g})",
    )
    g.add_argument(
        "--scheduler",
        choices=["linear", "cosine", "constant"],
        default="linear",
        help="decay after warm-up (default: linear)",
    )
    warm = g.add_mutually_exclusive_group()
    warm.add_argument(
        "--warmup-ratio", type=float, default=None, help="warm-up as a fraction of all steps (default 0)"
    )
    warm.add_argument("--warmup-steps", type=int, default=None, help="warm-up in optimizer steps")
    g.add_argument(
        "--max-length",
        type=positive_int,
        default=max_length,
        help=f"maximum tokens per sentence; longer ones are {long_sentences} (default: {max_length})",
    )
    g.add_argument(
        "--seed", type=int, default=42, help="random seed, set before the model is built (default: 42)"
    )
    g = parser.add_argument_group(
        "scale and resilience (README: Scaling up; the same flags under `accelerate launch`)"
    )
    g.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        default=1,
        metavar="N",
        help="sum gradients over N batches per optimizer step: the global batch is batch size x N x "
        "processes (default: 1)",
    )
    g.add_argument(
        "--mixed-precision",
        choices=["no", "fp16", "bf16"],
        default=None,
        help="autocast precision, passed to Accelerate (default: the `accelerate launch` config, else no)",
    )
    g.add_argument(
        "--torch-compile",
        action="store_true",
        help="compile the model with torch.compile (inductor); the first steps get slower, later ones faster",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="STEPS",
        help="save the full training state (model, optimizer, scheduler, RNG, data position) to "
        "OUT/checkpoints/step_N every STEPS optimizer steps; 0 = never (default: 0)",
    )
    g.add_argument(
        "--resume-from",
        default=None,
        metavar="DIR|latest",
        help="go on from a checkpoint folder, or from the newest one in OUT/checkpoints with `latest` (which "
        "starts from scratch when there is none yet); the run then ends as an uninterrupted one would",
    )
    g.add_argument(
        "--keep-checkpoints",
        type=int,
        default=2,
        metavar="K",
        help="keep only the newest K checkpoints; 0 = keep all (default: 2)",
    )
    g = parser.add_argument_group("data size and logging")
    g.add_argument(
        "--max-train-samples", type=positive_int, default=None, help="use only the first N training sentences"
    )
    g.add_argument(
        "--max-eval-samples",
        type=positive_int,
        default=None,
        help="use only the first N evaluation sentences",
    )
    g.add_argument(
        "--logging-steps", type=positive_int, default=20, help="log the loss every N steps (default: 20)"
    )
    g.add_argument(
        "--report-to",
        choices=["tensorboard", "none"],
        default="tensorboard",
        help="experiment tracker for accelerate's log (default: tensorboard, under OUT/logs)",
    )


def add_lora_arguments(parser: argparse.ArgumentParser) -> None:
    """LoRA flags of the fine-tuning tasks (``ade``, ``ner``); see ``modeling_ade/lora.py`` for the rule."""
    g = parser.add_argument_group(
        "LoRA (with --lora-r: adapters on the encoder, heads trained fully; OUT holds the adapter)"
    )
    g.add_argument(
        "--lora-r",
        type=int,
        default=None,
        metavar="R",
        help="train LoRA adapters of rank R on the encoder instead of all its weights; the heads (and the "
        "CRF) are trained fully and saved with the adapter (default: full fine-tuning)",
    )
    g.add_argument(
        "--lora-alpha",
        type=float,
        default=None,
        help="LoRA scaling numerator: updates are scaled by alpha / R (default: 2 * R)",
    )
    g.add_argument(
        "--lora-dropout",
        type=float,
        default=None,
        help="dropout on the input of the LoRA matrices (default: 0.1)",
    )
    g.add_argument(
        "--lora-target-modules",
        nargs="+",
        default=None,
        metavar="NAME",
        help="encoder linear layers to adapt, by name or end of dotted path, e.g. query key value "
        "attention.output.dense; only modules inside the encoder match (default by encoder family, "
        "README: query value for BERT / RoBERTa / XLM-R / ELECTRA, query_proj value_proj for DeBERTa-v2/v3)",
    )


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1 (the flag is named by argparse in the error)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")

    ade = tasks.add_parser(
        "ade",
        help="joint NER + relation extraction of adverse drug events (ADE corpus)",
        description="Joint NER + RE on the ADE corpus with the standard 10-fold split. "
        "Defaults are the paper's: max length 128, batch 16, lr 2e-5, 5 epochs, dropout 0.1, "
        "weight decay 5e-3.",
    )
    add_common_arguments(
        ade,
        epochs=5,
        batch_size=16,
        learning_rate=2e-5,
        max_length=128,
        model="sentence-transformers/all-MiniLM-L6-v2",
    )
    g = ade.add_argument_group("ADE task")
    which = g.add_mutually_exclusive_group()
    which.add_argument(
        "--fold",
        type=int,
        default=0,
        choices=range(10),
        metavar="K",
        help="train on fold K's train part, evaluate on its test part (default: 0)",
    )
    which.add_argument(
        "--cv",
        type=int,
        default=None,
        metavar="N",
        help="cross-validation over folds 0..N-1 (10 = the full protocol); per-fold results in "
        "OUT/fold_K and mean ± std in OUT/metrics.json",
    )
    g.add_argument(
        "--ner-loss-weight", type=float, default=0.5, help="λ in loss = λ·L_ner + (1-λ)·L_rel (default: 0.5)"
    )
    g.add_argument(
        "--classifier-dropout", type=float, default=0.1, help="dropout in both heads (default: 0.1)"
    )
    g = ade.add_argument_group(
        "real text (README: Real text): negative sentences, relation negatives, threshold"
    )
    g.add_argument(
        "--no-negatives",
        action="store_true",
        help="train on the sentences with relations only, the literature's setting (by default the ADE-NEG.txt "
        "sentences of the other nine negative parts are trained on as all-O sentences without relations; "
        "held-out negatives are scored for false positives either way)",
    )
    g.add_argument(
        "--negatives-per-positive",
        type=_positive_float,
        default=1.0,
        metavar="R",
        help="negative sentences per sentence with relations in each epoch, drawn in turn from a seeded order "
        "so successive epochs see different ones (default: 1.0)",
    )
    g.add_argument(
        "--relation-negatives",
        choices=["gold-pairs", "predicted-entities"],
        default="predicted-entities",
        help="pairs the relation head learns to say 'none' to: gold-pairs = unrelated pairs of gold entities only "
        "(the paper's); predicted-entities = also every pair with an entity the NER head predicts that is not "
        "gold, in the same forward pass (default: predicted-entities)",
    )
    g.add_argument(
        "--no-sentence-gate",
        action="store_true",
        help="leave out the sentence gate (a [CLS] classifier trained on sentences with relations against "
        "negative sentences; a sentence it rejects yields no entity and no relation)",
    )
    g.add_argument(
        "--negatives-ner-loss",
        action="store_true",
        help="also train the NER head on the negative sentences as all-O (by default they train the sentence "
        "gate and the relation head only)",
    )
    g.add_argument(
        "--relation-threshold",
        type=float,
        default=0.5,
        help="a pair is a relation when its best non-'none' label has at least this probability; stored in the "
        "model's config and used by the pipeline (default: 0.5)",
    )
    add_lora_arguments(ade)

    ner = tasks.add_parser(
        "ner",
        help="BERT-CRF token classification (Chinese HealthNER by default, or any word + BIO-tag dataset)",
        description="Encoder + two linear layers + CRF (or softmax), trained with layer-wise lr decay. "
        "Defaults are the paper's: 3 epochs, batch 16, lr 4e-5, layer decay 1/1.2; max length 512 covers "
        "every HealthNER sentence. Data: the Chinese HealthNER train/dev protocol, or --dataset.",
    )
    add_common_arguments(
        ner,
        epochs=3,
        batch_size=16,
        learning_rate=4e-5,
        max_length=512,
        model="moka-ai/m3e-small",
        layer_decay=1 / 1.2,
        long_sentences="split at word boundaries into consecutive windows (nothing cut), counted in the log",
    )
    g = ner.add_argument_group("NER model")
    g.add_argument(
        "--head",
        choices=["crf", "softmax"],
        default="crf",
        help="crf: CRF loss and Viterbi decoding; softmax: per-token cross-entropy (default: crf)",
    )
    g.add_argument(
        "--no-bio-constraints",
        action="store_true",
        help="let the CRF learn every transition (by default O -> I-X, B-X -> I-Y, I-X -> I-Y and "
        "starting with I-X are forbidden)",
    )
    g.add_argument(
        "--head-learning-rate",
        type=float,
        default=None,
        help="learning rate of the two linear layers (default: --learning-rate)",
    )
    g.add_argument(
        "--crf-learning-rate",
        type=float,
        default=None,
        help="learning rate of the CRF transition scores (default: the head's)",
    )
    add_lora_arguments(ner)
    g = ner.add_argument_group("data (default: Chinese HealthNER train / dev from --data-dir)")
    g.add_argument(
        "--dataset",
        default=None,
        help="another dataset of words + BIO tags: a folder (e.g. a Parquet export with a dataset card), "
        "a local .json / .jsonl / .parquet file, or a Hub dataset id",
    )
    g.add_argument("--dataset-config", default=None, help="configuration of --dataset (default: its default)")
    g.add_argument(
        "--eval-dataset-config",
        default=None,
        help="configuration of --dataset to evaluate on (default: --dataset-config)",
    )
    g.add_argument(
        "--train-split",
        default=None,
        help="split of --dataset to train on, slices allowed: train[:90%%] (default: train)",
    )
    g.add_argument(
        "--eval-split",
        default=None,
        help="split of --dataset to evaluate on, slices allowed: train[90%%:] (default: validation)",
    )
    g.add_argument(
        "--tokens-column",
        default="tokens",
        help="column of --dataset holding each sentence's words (characters for Chinese) (default: tokens)",
    )
    g.add_argument(
        "--tags-column",
        default="ner_tags",
        help="column of --dataset holding the BIO tags: ClassLabel ids or strings (default: ner_tags)",
    )

    from modeling_ade.mlm_task import add_mlm_parser

    add_mlm_parser(tasks, add_common_arguments)
    return parser


def run_ner(args) -> dict:
    from modeling_ade.ner_task import run_ner as run

    return run(args)


def run_mlm(args) -> dict:
    from modeling_ade.mlm_task import run_mlm as run

    return run(args)


def run_ade(args) -> dict:
    from datasets_scripts.ade_corpus import load_ade
    from modeling_ade.ade_data import split_negatives
    from modeling_ade.ade_task import run_fold
    from modeling_ade.metrics import aggregate_folds, format_cv_table
    from modeling_ade.training import run_record, write_json

    out = Path(args.output_dir)
    folds = list(range(args.cv)) if args.cv else [args.fold]
    if args.cv is not None and not 1 <= args.cv <= 10:
        raise SystemExit(f"--cv must be between 1 and 10, got {args.cv}")
    if args.cv and args.resume_from not in (None, "latest"):
        raise SystemExit(
            "--cv resumes with `--resume-from latest` (each fold from its own OUT/fold_K/checkpoints)"
        )
    if not 0.0 < args.relation_threshold < 1.0:
        raise SystemExit(f"--relation-threshold must be in (0, 1), got {args.relation_threshold}")
    negatives = None  # read after the first fold, so a missing corpus folder is reported for the main files
    per_fold = []
    for fold in folds:
        fold_dir = out / f"fold_{fold}" if args.cv else out
        if args.cv and args.resume_from and (fold_dir / "metrics.json").is_file():
            print(f"fold {fold}: finished before ({fold_dir / 'metrics.json'}), kept (--resume-from latest)")
            per_fold.append(json.loads((fold_dir / "metrics.json").read_text(encoding="utf-8")))
            continue
        splits = load_ade(f"fold_{fold}", data_dir=args.data_dir)
        train = list(splits["train"])[: args.max_train_samples]
        test = list(splits["test"])[: args.max_eval_samples]
        if negatives is None:
            negatives = list(next(iter(load_ade("negatives", data_dir=args.data_dir).values())))
        train_negatives, held_out = split_negatives(negatives, fold)
        held_out = held_out[: args.max_eval_samples]
        fold_args = argparse.Namespace(**{**vars(args), "fold": fold})  # recorded in training_args.json
        metrics = run_fold(
            fold_args,
            train,
            test,
            fold_dir,
            f"ade fold {fold}",
            train_negatives=[] if args.no_negatives else train_negatives[: args.max_train_samples],
            held_out_negatives=held_out,
        )
        per_fold.append(metrics)
        print(
            f"\nfold {fold} (test part, strict):\n"
            + format_cv_table(aggregate_folds([metrics]), keys=summary_keys(metrics))
        )
    if args.cv:
        summary = aggregate_folds(
            [{k: m[k] for k in ("overlap_kept", "overlap_removed", "real_text") if k in m} for m in per_fold]
        )
        write_json(out / "metrics.json", {"cross_validation": summary, "folds": folds})
        write_json(out / "training_args.json", run_record(args))
        print(
            f"\n{len(folds)}-fold cross-validation (column k = fold k):\n"
            + format_cv_table(summary, keys=summary_keys(summary))
        )
        return summary
    return per_fold[0]


SUMMARY_KEYS = [
    f"{overlap}.{key}"
    for overlap in ("overlap_kept", "overlap_removed")
    for key in ("ner_f1_micro", "ner_f1_macro", "re_f1_strict", "re_f1_boundaries", "re_f1_gold_entities")
] + [
    f"real_text.{key}"
    for key in ("neg_false_positive_rate", "sentence_precision", "sentence_recall", "sentence_f1")
]


def summary_keys(metrics: dict) -> list[str]:
    """The :data:`SUMMARY_KEYS` that ``metrics`` has (a fold trained before the real-text metrics lacks them)."""
    return [k for k in SUMMARY_KEYS if k.split(".")[0] in metrics]


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag, least in (("gradient_accumulation_steps", 1), ("checkpoint_every", 0), ("keep_checkpoints", 0)):
        if getattr(args, flag) < least:
            parser.error(f"--{flag.replace('_', '-')} must be at least {least}, got {getattr(args, flag)}")
    if any(getattr(args, f"lora_{k}", None) is not None for k in ("r", "alpha", "dropout", "target_modules")):
        from modeling_ade.lora import LoraSettings

        try:
            LoraSettings.from_args(args)
        except ValueError as err:
            parser.error(str(err))
    check_max_length(args, parser)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    from modeling_ade.run_guard import guard_output_dir

    guard_output_dir(
        args
    )  # before any data or model is loaded: nothing is trained into a folder that refuses
    return {"ade": run_ade, "ner": run_ner, "mlm": run_mlm}[args.task](args)


def check_max_length(args, parser: argparse.ArgumentParser) -> None:
    """Refuse a ``--max-length`` that cannot hold the tokenizer's special tokens plus one word (two with NSP's
    sentence pairs), the same way for every task."""
    from transformers import AutoTokenizer

    from modeling_ade.encoders import resolve_model_name

    path = resolve_model_name(
        args.model
    )  # a missing --model folder is named here, before anything is written
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        return  # the task reports an unloadable --model with its own message
    pair = bool(getattr(args, "nsp", False))
    least = tokenizer.num_special_tokens_to_add(pair=pair) + (2 if pair else 1)
    if args.max_length < least:
        parser.error(
            f"--max-length {args.max_length} cannot hold the tokenizer's special tokens and "
            f"{'two sentences' if pair else 'one word'}: it must be at least {least}"
        )


def cli() -> int:
    """Command-line entry: bad input (data folder, corpus file, dataset column, checkpoint, launch) is one clear
    message, exit 2."""
    from datasets_scripts.ade_corpus import AdeFormatError
    from datasets_scripts.chinese_healthner import HealthNerFormatError
    from datasets_scripts.common import DataDirError
    from modeling_ade.checkpointing import CheckpointError
    from modeling_ade.encoders import ModelNameError
    from modeling_ade.run_guard import RunGuardError
    from modeling_ade.training import LaunchError, NonFiniteLossError

    try:
        return 0 if main() is not None else 1
    except (
        DataDirError,
        AdeFormatError,
        HealthNerFormatError,
        CheckpointError,
        LaunchError,
        RunGuardError,
        NonFiniteLossError,
        ModelNameError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
