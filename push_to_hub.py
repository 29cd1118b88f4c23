"""Package a trained model, a PEFT adapter or a corpus as a Hub repository and upload it in one commit.

    python push_to_hub.py model OUT --repo-id USER/NAME [--dry-run DIR]
    python push_to_hub.py model ADAPTER_DIR --repo-id USER/NAME --merge
    python push_to_hub.py dataset ade --repo-id USER/NAME [--data-dir DIR] [--dry-run DIR]
    python push_to_hub.py space USER/NAME --repo-id USER/NAME-demo [--model-revision SHA] [--dry-run DIR]

``model``: OUT is a ``train.py`` output folder. The repository gets the safetensors weights, ``config.json``
(with ``auto_map`` / ``custom_pipelines``), the Python files it names (the model's own code), the tokenizer,
``metrics.json`` and ``training_args.json``, a generated model card ``README.md``, and ``handler.py`` +
``requirements.txt`` for Inference Endpoints. A PEFT adapter folder (``adapter_config.json``) is uploaded as
an adapter with a card naming its base model, or merged into its base first with ``--merge``.

``space``: a Gradio app (``app.py``, from ``modeling_ade/space/app.py``) that loads the model from the Hub at a pinned
commit and shows its entities highlighted and its relations in a table, with ``requirements.txt`` and a README
holding the Space's metadata; the same app runs locally with ``python app.py --model DIR``.

``dataset``: the builder's own Parquet export (``datasets_scripts.<corpus>.export``) and its dataset card,
extended with Hub metadata and loading instructions.

Nothing is written to OUT: the upload is assembled from OUT's files plus generated ones; ``--dry-run DIR``
writes exactly that assembly to DIR and uploads nothing. The token comes from ``hf auth login`` or
``HF_TOKEN``; it is never printed or written.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

logger = logging.getLogger("push_to_hub")

Manifest = dict[str, "Path | bytes"]
"""Path in the repository -> a local file to upload, or generated content."""

WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TOKENIZER_FILES = (
    "tokenizer_config.json",
    "tokenizer.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
VOCABULARY_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
RUN_FILES = ("metrics.json", "training_args.json", "generation_config.json")
CORPORA = {
    "ade": "ade_corpus",
    "chinese_healthner": "chinese_healthner",
}  # CLI name -> datasets_scripts module


class PackagingError(Exception):
    """The folder cannot be packaged (missing files, wrong kind); the message says what to do."""


# --------------------------------------------------------------------------------------------------------
# Model folders
# --------------------------------------------------------------------------------------------------------


def _weight_files(folder: Path) -> list[str] | None:
    if (folder / WEIGHTS).is_file():
        return [WEIGHTS]
    if (folder / WEIGHTS_INDEX).is_file():
        index = json.loads((folder / WEIGHTS_INDEX).read_text(encoding="utf-8"))
        return [WEIGHTS_INDEX, *sorted(set(index.get("weight_map", {}).values()))]
    return None


def model_manifest(folder: Path) -> Manifest:
    """The files of a trained model folder (or adapter folder) that go to the Hub.

    Raises :class:`PackagingError` listing everything that is missing: ``config.json``, the safetensors
    weights, the code files ``config.json`` names, the tokenizer (adapter folders: ``adapter_config.json``
    and ``adapter_model.safetensors``; config and tokenizer optional).
    """
    if not folder.is_dir():
        raise PackagingError(f"{folder}: no such folder")
    is_adapter = (folder / ADAPTER_CONFIG).is_file()
    missing: list[str] = []
    manifest: Manifest = {}
    config = {}
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        manifest["config.json"] = folder / "config.json"
    elif not is_adapter:
        missing.append("config.json (the model configuration)")
    if is_adapter:
        manifest[ADAPTER_CONFIG] = folder / ADAPTER_CONFIG
        if (folder / ADAPTER_WEIGHTS).is_file():
            manifest[ADAPTER_WEIGHTS] = folder / ADAPTER_WEIGHTS
        else:
            missing.append(f"{ADAPTER_WEIGHTS} (the adapter weights)")
    else:
        weights = _weight_files(folder)
        if weights is None:
            found = [p.name for p in folder.glob("*.bin")]
            hint = f"; found {', '.join(found)}: re-save with save_pretrained (safetensors)" if found else ""
            missing.append(f"{WEIGHTS} or {WEIGHTS_INDEX} (the weights{hint})")
        else:
            for name in weights:
                if (folder / name).is_file():
                    manifest[name] = folder / name
                else:
                    missing.append(f"{name} (a weight shard listed in {WEIGHTS_INDEX})")
    from modeling_ade.artifacts import code_files

    for name in code_files(folder, config):
        if (folder / name).is_file():
            manifest[name] = folder / name
        else:
            missing.append(f"{name} (model code named in config.json)")
    tokenizer = [n for n in TOKENIZER_FILES if (folder / n).is_file()]
    if not is_adapter and (
        "tokenizer_config.json" not in tokenizer or not set(tokenizer) & set(VOCABULARY_FILES)
    ):
        missing.append("the tokenizer (tokenizer_config.json and tokenizer.json or a vocabulary file)")
    manifest.update({n: folder / n for n in tokenizer})
    manifest.update({n: folder / n for n in RUN_FILES if (folder / n).is_file()})
    manifest.update(onnx_manifest(folder))
    if missing:
        folds = sorted(p.parent.name for p in folder.glob("fold_*/config.json"))
        hint = (
            f"\n{folder} looks like a cross-validation run: push one fold's model, e.g. {folder / folds[0]} "
            "(its card includes the cross-validation means)."
            if folds
            else ""
        )
        raise PackagingError(
            f"{folder} is not a complete {'adapter' if is_adapter else 'model'} folder; missing:\n"
            + "\n".join(f"  - {m}" for m in missing)
            + hint
        )
    left_out = sorted(p.name for p in folder.iterdir() if p.name not in manifest)
    if left_out:
        logger.info(f"not uploaded from {folder}: {', '.join(left_out)}")
    return manifest


def onnx_manifest(folder: Path) -> Manifest:
    """The ONNX encoders ``python -m modeling_ade.export`` wrote into ``folder`` (none: ``{}``), with their record.

    Raises :class:`PackagingError` when they were traced from other encoder weights than the folder's (the model was
    trained again into the same folder): they would give the new heads an old encoder."""
    from modeling_ade.hub.onnx_encoder import EXPORT_RECORD, ONNX_FILES, ONNX_FOLDER, encoder_fingerprint

    found = [name for name in ONNX_FILES.values() if (folder / ONNX_FOLDER / name).is_file()]
    if not found:
        return {}
    record_path = folder / ONNX_FOLDER / EXPORT_RECORD
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    if (folder / WEIGHTS).is_file():
        from safetensors.torch import load_file

        prefix = "encoder."
        state = {k[len(prefix) :]: v for k, v in load_file(folder / WEIGHTS).items() if k.startswith(prefix)}
        if record.get("encoder_sha256") != encoder_fingerprint(state):
            raise PackagingError(
                f"{folder / ONNX_FOLDER} was exported from other encoder weights than {folder / WEIGHTS}: export "
                f"again (python -m modeling_ade.export {folder}) or delete {folder / ONNX_FOLDER}"
            )
    return {f"{ONNX_FOLDER}/{name}": folder / ONNX_FOLDER / name for name in [*found, EXPORT_RECORD]}


def requirements_txt(config: dict, onnx: bool = False) -> bytes:
    """``requirements.txt`` for an Inference Endpoint: the transformers major version the model was saved with,
    the sentence splitter of the ``ade-extraction`` pipeline and, for a model with an ONNX encoder, ONNX Runtime
    (the handler uses it when ``MODELING_ADE_ONNX`` is set)."""
    major = int(str(config.get("transformers_version", "5")).split(".")[0])
    splitter = "sentencex>=1.0.32\n" if "ade-extraction" in (config.get("custom_pipelines") or {}) else ""
    runtime = "onnxruntime>=1.20\n" if onnx else ""
    return (
        "# Installed by Inference Endpoints on top of the container; handler.py needs only these.\n"
        f"transformers>={major}.0,<{major + 1}\ntorch>=2.6\n{splitter}{runtime}"
    ).encode()


# --------------------------------------------------------------------------------------------------------
# Spaces
# --------------------------------------------------------------------------------------------------------

GRADIO_VERSION = (
    "6.31.0"  # the Space's sdk_version: checked with transformers 5, torch 2.13, huggingface-hub 2
)
SPACE_APP = Path(__file__).resolve().parent / "modeling_ade" / "space" / "app.py"


def model_revision(repo_id: str, revision: str | None) -> str:
    """The commit the Space pins: ``--model-revision``, else the model repository's current commit (Hub)."""
    if revision:
        return revision
    from huggingface_hub import HfApi, constants

    if constants.is_offline_mode():
        raise PackagingError(
            f"--model-revision is needed while HF_HUB_OFFLINE is set: the commit of {repo_id} the Space runs "
            "(push_to_hub.py model prints it after an upload)"
        )
    try:
        return HfApi().model_info(repo_id).sha
    except Exception as err:  # not found, no access, no network: say which
        raise PackagingError(
            f"cannot read the current commit of {repo_id}: {type(err).__name__}: {err}"
        ) from err


def build_space_upload(args, scratch: Path) -> tuple[Manifest, str]:
    """The manifest of ``push_to_hub.py space``: the Gradio app pinned to the model's commit, its requirements
    and a README with the Space's metadata."""
    from huggingface_hub import SpaceCard, SpaceCardData

    if args.model_repo.count("/") != 1 or Path(args.model_repo).exists():
        raise PackagingError(
            f"MODEL_REPO {args.model_repo!r}: a Space loads its model from the Hub, so give its Hub id, USER/NAME "
            "(upload a folder first with `push_to_hub.py model`)"
        )
    revision = model_revision(args.model_repo, args.model_revision)
    app = SPACE_APP.read_text(encoding="utf-8")
    pins = {
        "MODEL_REPO = None": f"MODEL_REPO = {args.model_repo!r}",
        "MODEL_REVISION = None": f"MODEL_REVISION = {revision!r}",
    }
    for placeholder, value in pins.items():
        if app.count(placeholder) != 1:
            raise PackagingError(f"{SPACE_APP}: expected one line starting {placeholder!r}")
        app = app.replace(placeholder, value)
    from importlib.metadata import version

    # the versions this app was tested with here (from this minor on, same major); gradio comes from sdk_version
    major, minor = version("transformers").split(".")[:2]
    requirements = (
        f"transformers>={major}.{minor},<{int(major) + 1}\ntorch>=2.6\nsentencex>={version('sentencex')}\n"
    )
    name = args.model_repo.split("/")[-1]
    data = SpaceCardData(
        title=f"{name} demo"[:30],
        emoji="💊",
        colorFrom="blue",
        colorTo="green",
        sdk="gradio",
        sdk_version=GRADIO_VERSION,
        app_file="app.py",
        pinned=False,
        models=[args.model_repo],
        short_description=f"Try {name}: entities and relations"[:60],
    )
    body = (
        f"# {name}: try it\n\nA Gradio demo of [{args.model_repo}](https://huggingface.co/{args.model_repo}) at "
        f"commit `{revision}`: type a text, see its entities highlighted by type and the relations found.\n\n"
        "The model runs its own code (`trust_remote_code=True`), pinned to that commit in `app.py`. Run the same "
        "app on your machine with a model folder: `pip install gradio transformers torch sentencex` then "
        "`python app.py --model runs/demo/model`.\n\nMade with modeling-ade's `push_to_hub.py space`.\n"
    )
    card = SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    manifest: Manifest = {
        "app.py": app.encode("utf-8"),
        "requirements.txt": requirements.encode(),
        "README.md": str(card).encode("utf-8"),
    }
    return manifest, f"Gradio demo of {args.model_repo}@{revision[:12]} with modeling-ade push_to_hub.py"


def build_model_upload(args, scratch: Path) -> tuple[Manifest, str]:
    """The manifest of ``push_to_hub.py model`` and a default commit message."""
    from modeling_ade.lora import MergeError, merge_adapter
    from modeling_ade.model_card import build_model_card
    from modeling_ade.model_run import read_model_run

    folder = Path(args.folder)
    is_adapter = (folder / ADAPTER_CONFIG).is_file()
    if args.merge and not is_adapter:
        raise PackagingError(f"--merge needs a PEFT adapter folder; {folder} has no {ADAPTER_CONFIG}")
    run = read_model_run(folder)
    merged_from = None
    if args.merge:
        model_manifest(folder)  # the adapter folder is complete
        merged_dir = scratch / "merged"
        try:
            base = merge_adapter(
                folder, merged_dir, args.base_model, trust_remote_code=args.trust_remote_code
            )
        except MergeError as err:
            raise PackagingError(str(err)) from err
        manifest = model_manifest(merged_dir)
        manifest.update({n: folder / n for n in RUN_FILES if (folder / n).is_file()})
        run.config = read_model_run(merged_dir).config
        run.adapter_config, merged_from = None, f"{folder.name}, base {Path(base).name}"
        logger.info(f"merged the adapter into its base model {base}")
    else:
        manifest = model_manifest(folder)
    if "cross_validation" in (run.metrics or {}):
        raise PackagingError(f"{folder}/metrics.json is a cross-validation summary: push one fold's folder")
    if run.kind is None and not run.is_adapter:
        logger.warning(f"model type {run.model_type!r} is not one this tool knows: the card will be generic")
    card = build_model_card(
        run,
        args.repo_id,
        datasets=args.datasets,
        base_model=args.base_model,
        merged_adapter=merged_from,
        space=args.space,
    )
    manifest["README.md"] = str(card).encode("utf-8")
    if not run.is_adapter:
        import modeling_ade.endpoint_handler as handler

        manifest["handler.py"] = Path(handler.__file__).read_bytes()
        manifest["requirements.txt"] = requirements_txt(
            run.config, onnx=any(name.endswith(".onnx") for name in manifest)
        )
    kind = "adapter" if run.is_adapter else (run.model_type or "model")
    return manifest, f"Upload {kind} from {folder.name} with modeling-ade push_to_hub.py"


# --------------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------------

DATASET_METADATA = {
    "ade": {
        "task_categories": ["token-classification"],
        "task_ids": ["named-entity-recognition"],
        "tags": ["biomedical", "relation-extraction", "adverse-drug-events", "pharmacovigilance"],
        "source_datasets": ["original"],
    },
    "chinese_healthner": {
        "task_categories": ["token-classification"],
        "task_ids": ["named-entity-recognition"],
        "tags": ["biomedical", "healthcare", "chinese", "traditional-chinese"],
        "source_datasets": ["original"],
    },
}


def build_dataset_upload(args, scratch: Path) -> tuple[Manifest, str]:
    """Export the corpus with its builder's ``export`` and extend the builder's card for the Hub."""
    import importlib

    from huggingface_hub import DatasetCard

    module = importlib.import_module(f"datasets_scripts.{CORPORA[args.corpus]}")
    configs = args.configs or list(getattr(module, "CONFIG_NAMES", None) or module.DEFAULT_EXPORT_CONFIGS)
    known = getattr(module, "CONFIG_NAMES", None) or module.DEFAULT_EXPORT_CONFIGS
    unknown = [c for c in configs if c not in known]
    if unknown:
        raise PackagingError(f"unknown {args.corpus} config(s) {unknown}; choose from {', '.join(known)}")
    out = module.export(scratch / "export", configs=configs, data_dir=args.data_dir)
    card = DatasetCard.load(out / "README.md")
    for key, value in DATASET_METADATA[args.corpus].items():
        setattr(card.data, key, value)
    first = configs[0]
    card.text = (
        card.text.rstrip()
        + f"""

## Loading from the Hub

```python
from datasets import load_dataset

data = load_dataset("{args.repo_id}", "{first}", revision="main")  # pin a commit hash for reproducible work
```

Exported with modeling-ade (`python push_to_hub.py dataset {args.corpus}`): the Parquet files are written by
the builder `datasets_scripts/{CORPORA[args.corpus]}.py` from the raw files named under *Source(s)* above.
"""
    )
    manifest: Manifest = {p.relative_to(out).as_posix(): p for p in sorted(out.rglob("*")) if p.is_file()}
    manifest["README.md"] = str(card).encode("utf-8")
    return manifest, f"Upload {args.corpus} ({', '.join(configs)}) with modeling-ade push_to_hub.py"


# --------------------------------------------------------------------------------------------------------
# Dry run and upload
# --------------------------------------------------------------------------------------------------------


def write_folder(manifest: Manifest, folder: Path) -> None:
    """Write the manifest to ``folder`` (which must be empty or absent): exactly what would be uploaded."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise PackagingError(f"--dry-run folder {folder} exists and is not empty; choose a new folder")
    for path_in_repo, source in sorted(manifest.items()):
        target = folder / path_in_repo
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)


def upload(manifest: Manifest, args, repo_type: str, commit_message: str):
    """Create the repository if needed (and the branch ``--revision``), then upload everything in ONE commit
    (``create_commit``: ``upload_folder`` may split a large folder into several commits when ``hf_xet`` is
    installed). Returns the ``CommitInfo``."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    space_sdk = (
        {"space_sdk": "gradio"} if repo_type == "space" else {}
    )  # the Hub needs a Space's SDK up front
    api.create_repo(args.repo_id, repo_type=repo_type, private=args.private, exist_ok=True, **space_sdk)
    if args.revision and args.revision != "main":
        api.create_branch(args.repo_id, branch=args.revision, repo_type=repo_type, exist_ok=True)
    operations = [
        CommitOperationAdd(
            path_in_repo=path, path_or_fileobj=source if isinstance(source, bytes) else str(source)
        )
        for path, source in sorted(manifest.items())
    ]
    return api.create_commit(
        args.repo_id,
        operations,
        commit_message=args.commit_message or commit_message,
        repo_type=repo_type,
        revision=args.revision,
        create_pr=args.create_pr,
    )


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "<token>") if token else text


def run(args) -> int:
    from huggingface_hub import constants, get_token

    repo_type = args.command  # model, dataset or space
    token = get_token()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="push_to_hub_")))
        build = {"model": build_model_upload, "dataset": build_dataset_upload, "space": build_space_upload}[
            args.command
        ]
        try:
            manifest, commit_message = build(args, scratch)
            if args.dry_run:
                write_folder(manifest, Path(args.dry_run))
        except (PackagingError, FileNotFoundError, ValueError) as err:
            print(f"error: {_redact(str(err), token)}", file=sys.stderr)
            return 1
        if args.dry_run:
            print(
                f"dry run: wrote the {len(manifest)} files that would be uploaded to {args.dry_run}; nothing uploaded"
            )
            return 0
        if constants.is_offline_mode():
            print("error: HF_HUB_OFFLINE is set; unset it to upload (or use --dry-run DIR)", file=sys.stderr)
            return 1
        if token is None:
            print("error: no Hugging Face token: run `hf auth login` or set HF_TOKEN", file=sys.stderr)
            return 1
        try:
            info = upload(manifest, args, repo_type, commit_message)
        except Exception as err:  # network, HTTP and server errors alike: report, never half-succeed silently
            source = f"The local folder {args.folder} was not modified. " if args.command == "model" else ""
            print(
                f"error: upload to {args.repo_id} failed: {type(err).__name__}: {_redact(str(err), token)}\n"
                f"No commit was made, so the repository's files are unchanged (it may have been created "
                f"empty). {source}Run the same command again to retry.",
                file=sys.stderr,
            )
            return 1
    where = f"pull request {info.pr_url}" if info.pr_url else info.commit_url
    print(f"uploaded {len(manifest)} files to {args.repo_id} in one commit: {where}")
    print(f'pin this version with revision="{info.oid}"')
    return 0


# --------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------


def _add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo-id", required=True, help="Hub repository to create or update, as USER/NAME or ORG/NAME"
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="create the repository as private (an existing one keeps its visibility)",
    )
    parser.add_argument(
        "--revision", default=None, help="branch to commit to, created from main if missing (default: main)"
    )
    parser.add_argument(
        "--commit-message", default=None, help="commit message (default: says what was uploaded)"
    )
    parser.add_argument(
        "--create-pr",
        action="store_true",
        help="open a pull request against main instead of committing to it",
    )
    parser.add_argument(
        "--dry-run",
        metavar="DIR",
        default=None,
        help="write exactly the files that would be uploaded to DIR (new or empty) and upload nothing",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{model,dataset,space}")
    model = sub.add_parser(
        "model", help="upload a trained model folder or a PEFT adapter folder with a generated model card"
    )
    model.add_argument("folder", metavar="OUT", help="train.py output folder (or an adapter folder)")
    _add_upload_arguments(model)
    model.add_argument(
        "--merge",
        action="store_true",
        help="merge the PEFT adapter in OUT into its base model and upload the full model",
    )
    model.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="with --merge: run the model code of the base model folder or Hub repo (needed only for a base "
        "whose model type is neither transformers' nor this package's; by default no such code is run)",
    )
    model.add_argument(
        "--base-model",
        default=None,
        help="base model of the adapter (Hub id or folder), for --merge and the card "
        "(default: base_model_name_or_path of adapter_config.json)",
    )
    model.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        metavar="ID",
        help="Hub dataset ids for the card's metadata (default for ADE models: ade-benchmark-corpus/ade_corpus_v2; "
        "e.g. the repo written by `push_to_hub.py dataset`)",
    )
    model.add_argument(
        "--space",
        default=None,
        metavar="ID",
        help="a Space where visitors can try the model (made by `push_to_hub.py space`): the card links to it",
    )
    data = sub.add_parser("dataset", help="export a corpus to Parquet with its dataset card and upload it")
    data.add_argument("corpus", choices=list(CORPORA), help="which corpus builder to export")
    _add_upload_arguments(data)
    data.add_argument(
        "--data-dir",
        default=None,
        help="raw corpus folder (default: the corpus environment variable, then ../shared/data/...)",
    )
    data.add_argument(
        "--configs",
        nargs="+",
        default=None,
        metavar="CONFIG",
        help="configs to export (default: all the builder exports)",
    )
    space = sub.add_parser(
        "space", help="a Gradio Space where visitors try a model that is on the Hub (entities, relations)"
    )
    space.add_argument("model_repo", metavar="MODEL_REPO", help="the model's Hub id, USER/NAME")
    _add_upload_arguments(space)
    space.add_argument(
        "--model-revision",
        default=None,
        metavar="SHA",
        help="the model commit the app loads (default: the repository's current commit, read from the Hub; "
        "needed offline). The app runs the model's code, so it is pinned",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.create_pr and args.revision not in (None, "main"):
        parser.error("--create-pr opens a pull request against main; it cannot be combined with --revision")
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
