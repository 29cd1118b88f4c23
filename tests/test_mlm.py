"""Continual pre-training (``train.py mlm``): masking, NSP pairs, cleaning, packing, leakage guard, end to end."""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter

import pytest
import torch
from conftest import tiny_encoder_config

import train
from modeling_ade.mlm_data import (
    IGNORE_INDEX,
    MlmCollator,
    NspPair,
    TextUnit,
    build_documents,
    chunk_sequence,
    clean_text,
    dedupe_units,
    encode_pairs,
    encode_texts,
    exclude_sentences,
    make_nsp_pairs,
    mask_tokens,
    matching_key,
    pack_sequences,
    premask_features,
    read_jsonl_file,
    read_text_file,
    split_held_out,
    split_sentences,
)
from modeling_ade.mlm_task import MlmSettings, collect_units, parse_dataset_spec, run

MASK, CLS, SEP, PAD = 103, 101, 102, 0
SPECIAL = [0, 100, 101, 102, 103]
RANDOM_IDS = torch.tensor([i for i in range(1000, 2000)])


def mlm_args(argv: list[str]) -> MlmSettings:
    """Settings as ``train.py mlm`` will build them (shared flags + the MLM flags)."""
    return MlmSettings.from_args(train.build_parser(only="mlm").parse_args(["mlm", *argv]))


@pytest.fixture(autouse=True)
def accelerate_state():
    from accelerate import PartialState

    PartialState()


def batch_with_specials(batch: int, seq_len: int, seed: int = 0):
    """Random content ids in [1000, 2000), [CLS] first, [SEP] after the content, padding after."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (batch, seq_len), generator=g)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (batch,), generator=g)
    positions = torch.arange(seq_len)[None, :]
    ids[:, 0] = CLS
    ids[positions == (lengths[:, None] - 1)] = SEP
    ids[positions >= lengths[:, None]] = PAD
    special = torch.isin(ids, torch.tensor(SPECIAL))
    return ids, special, lengths


# ----------------------------------------------------------------------------------------------------
# masking


def test_masking_statistics_15_percent_and_80_10_10():
    ids, special, _ = batch_with_specials(256, 128)
    masked, labels = mask_tokens(
        ids,
        special,
        mask_token_id=MASK,
        random_token_ids=RANDOM_IDS,
        generator=torch.Generator().manual_seed(1),
    )
    selected = labels != IGNORE_INDEX
    maskable = ~special
    # per sequence exactly round(0.15 n), at least 1 (BERT's create_pretraining_data)
    expected = torch.clamp(torch.floor(maskable.sum(1) * 0.15 + 0.5), min=1)
    assert torch.equal(selected.sum(1), expected.long())
    assert abs(selected.sum().item() / maskable.sum().item() - 0.15) < 0.005
    assert torch.equal(labels[selected], ids[selected])
    n = selected.sum().item()
    to_mask = (masked[selected] == MASK).sum().item() / n
    unchanged = (masked[selected] == ids[selected]).sum().item() / n
    replaced = ((masked[selected] != MASK) & (masked[selected] != ids[selected])).sum().item() / n
    assert abs(to_mask - 0.8) < 0.02 and abs(unchanged - 0.1) < 0.02 and abs(replaced - 0.1) < 0.02
    assert torch.equal(masked[~selected], ids[~selected])  # nothing else touched


def test_special_tokens_and_padding_never_masked_and_never_inserted():
    ids, special, lengths = batch_with_specials(64, 40, seed=3)
    for seed in range(5):
        masked, labels = mask_tokens(
            ids,
            special,
            mask_token_id=MASK,
            random_token_ids=RANDOM_IDS,
            mlm_probability=0.5,
            generator=torch.Generator().manual_seed(seed),
        )
        assert (labels[special] == IGNORE_INDEX).all()
        assert torch.equal(masked[special], ids[special])
        padding = torch.arange(40)[None, :] >= lengths[:, None]
        assert (masked[padding] == PAD).all()
        replaced = (labels != IGNORE_INDEX) & (masked != MASK) & (masked != ids)
        assert torch.isin(masked[replaced], RANDOM_IDS).all()


def test_masking_is_reproducible_with_a_seed():
    ids, special, _ = batch_with_specials(8, 32)
    kwargs = dict(mask_token_id=MASK, random_token_ids=RANDOM_IDS)
    a = mask_tokens(ids, special, generator=torch.Generator().manual_seed(7), **kwargs)
    b = mask_tokens(ids, special, generator=torch.Generator().manual_seed(7), **kwargs)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_whole_word_groups_are_masked_together():
    ids, special, _ = batch_with_specials(128, 64, seed=5)
    g = torch.Generator().manual_seed(0)
    # words of 1-4 pieces over the non-special positions of each row
    word_ids = torch.full_like(ids, -1)
    for b in range(ids.shape[0]):
        word, left = -1, 0
        for t in range(ids.shape[1]):
            if special[b, t]:
                continue
            if left == 0:
                word, left = word + 1, int(torch.randint(1, 5, (1,), generator=g))
            word_ids[b, t], left = word, left - 1
    masked, labels = mask_tokens(
        ids,
        special,
        mask_token_id=MASK,
        random_token_ids=RANDOM_IDS,
        word_ids=word_ids,
        generator=torch.Generator().manual_seed(2),
    )
    selected = labels != IGNORE_INDEX
    is_mask = masked == MASK
    for b in range(ids.shape[0]):
        for w in word_ids[b].unique().tolist():
            if w < 0:
                continue
            positions = word_ids[b] == w
            assert selected[b, positions].all() or not selected[b, positions].any()
            assert is_mask[b, positions].all() or not is_mask[b, positions].any()  # one decision per word
    share = selected.sum().item() / (~special).sum().item()
    assert abs(share - 0.15) < 0.01, share


def test_collator_masks_dynamically_and_premask_is_fixed():
    collator = MlmCollator(pad_token_id=PAD, mask_token_id=MASK, special_ids=SPECIAL, vocab_size=3000, seed=0)
    features = [
        {"input_ids": [CLS, *range(1000, 1000 + n), SEP], "word_ids": [-1, *range(n), -1]} for n in (20, 30)
    ]
    first, second = collator(features), collator(features)
    assert set(first) == {"input_ids", "attention_mask", "labels"}
    assert first["input_ids"].shape == (2, 32) and first["attention_mask"][0].sum() == 22
    assert not torch.equal(first["labels"], second["labels"])  # new masks every draw
    fixed_a = premask_features(features, collator, seed=11)
    fixed_b = premask_features(list(reversed(features)), collator, seed=11)
    assert fixed_a == premask_features(features, collator, seed=11)
    assert fixed_a[0]["labels"] != fixed_b[1]["labels"]  # seeded by position, not by content
    assert all(len(f["labels"]) == len(f["input_ids"]) for f in fixed_a)


# ----------------------------------------------------------------------------------------------------
# NSP pairs


def test_nsp_pairs_are_balanced_and_correctly_labelled():
    rng = random.Random(0)
    documents = [[f"d{d}s{i}" for i in range(rng.randint(1, 8))] for d in range(200)]
    pairs = make_nsp_pairs(documents, seed=3)
    where = {s: (d, i) for d, doc in enumerate(documents) for i, s in enumerate(doc)}
    assert len(pairs) == sum(len(doc) - 1 for doc in documents)
    counts = Counter(p.is_next for p in pairs)
    assert abs(counts[True] - counts[False]) <= 1
    for pair in pairs:
        (da, ia), (db, ib) = where[pair.a], where[pair.b]
        if pair.is_next:
            assert da == db and ib == ia + 1 and pair.label == 0
        else:
            assert da != db and pair.label == 1
    assert make_nsp_pairs(documents, seed=3) == pairs


def test_nsp_pairs_need_two_documents_with_a_next_sentence():
    with pytest.raises(ValueError, match="at least two sentences"):
        make_nsp_pairs([["a"], ["b"]], seed=0)
    with pytest.raises(ValueError, match="at least two documents"):
        make_nsp_pairs([["a", "b"]], seed=0)


def test_nsp_pair_features(minilm_tokenizer):
    pairs = [NspPair("aspirin caused rash.", "it resolved.", True), NspPair("word " * 40, "x " * 40, False)]
    features, truncated = encode_pairs(minilm_tokenizer, pairs, max_length=24)
    assert truncated == 1 and len(features[1]["input_ids"]) == 24
    first = features[0]
    assert first["next_sentence_label"] == 0 and features[1]["next_sentence_label"] == 1
    types, words = first["token_type_ids"], first["word_ids"]
    assert set(types) == {0, 1}
    a_words = {w for w, t in zip(words, types) if t == 0 and w >= 0}
    b_words = {w for w, t in zip(words, types) if t == 1 and w >= 0}
    assert a_words and b_words and not a_words & b_words


# ----------------------------------------------------------------------------------------------------
# cleaning, reading, documents


def test_clean_text():
    raw = "<p>Aspirin&amp;ibuprofen</p>\u00a0caused\u200b <b>rash</b>\t\n<!-- note -->in ｆｕｌｌ\u00adwidth\x07 ."
    assert clean_text(raw) == "Aspirin&ibuprofen caused rash in fullwidth ."
    assert (
        clean_text("p < 0.05 and q > 1; &lt;b&gt; stays literal") == "p < 0.05 and q > 1; <b> stays literal"
    )
    assert clean_text("  \u3000 ") == ""
    assert clean_text("頭痛，發燒。") == "頭痛,發燒。"  # NFKC folds the full-width comma


def test_matching_key_and_dedupe():
    units = [TextUnit("d", "Aspirin  caused rash.", "s"), TextUnit("e", "aspirin caused rash.", "s")]
    kept, dropped = dedupe_units(units)
    assert kept == units[:1] and dropped == 1
    assert matching_key("ÀB <i>C</i>") == "Àb c"


def test_read_text_file_documents(tmp_path):
    blocks = tmp_path / "blocks.txt"
    blocks.write_text("\nA one. A two.\nA three.\n\n\nB one.\n\n", encoding="utf-8")
    units = read_text_file(blocks)
    assert [u.text for u in units] == ["A one. A two.", "A three.", "B one."]
    assert build_documents(units) == [["A one.", "A two.", "A three."], ["B one."]]
    lines = tmp_path / "lines.txt"
    lines.write_text("\ufeffDoc one. Second.\nDoc two.\n", encoding="utf-8")
    assert build_documents(read_text_file(lines)) == [["Doc one.", "Second."], ["Doc two."]]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"body": "x"}\n\n{"body": "y"}\n', encoding="utf-8")
    assert [u.text for u in read_jsonl_file(jsonl, "body")] == ["x", "y"]
    with pytest.raises(ValueError, match=r"t.jsonl:1: no field 'text'"):
        read_jsonl_file(jsonl, "text")


def test_split_sentences():
    assert split_sentences("It hurt. Then? Yes! 3.5 mg") == ["It hurt.", "Then?", "Yes!", "3.5 mg"]
    assert split_sentences("頭痛。發燒！好") == ["頭痛。", "發燒！", "好"]


def test_split_held_out_is_seeded_and_disjoint():
    items = list(range(100))
    train_a, held_a = split_held_out(items, 0.1, seed=1)
    assert split_held_out(items, 0.1, seed=1) == (train_a, held_a)
    assert len(held_a) == 10 and sorted(train_a + held_a) == items
    assert split_held_out(items, 0.1, seed=2)[1] != held_a
    assert split_held_out(items, 0.0, seed=1) == (items, [])


# ----------------------------------------------------------------------------------------------------
# chunking and packing


def test_packing_keeps_every_token():
    rng = random.Random(0)
    sequences = []
    for _ in range(50):
        n = rng.randint(0, 30)
        sequences.append(
            ([rng.randint(1000, 2000) for _ in range(n)], sorted(rng.randint(0, 5) for _ in range(n)))
        )
    packed = pack_sequences(sequences, block_size=16, separator_id=SEP)
    stream = [t for block in packed.blocks for t in block]
    assert [t for t in stream if t != SEP] == [t for ids, _ in sequences for t in ids]
    non_empty = sum(1 for ids, _ in sequences if ids)
    assert stream.count(SEP) == non_empty - 1
    assert packed.num_tokens == sum(len(ids) for ids, _ in sequences)
    assert all(len(b) == 16 for b in packed.blocks[:-1])
    assert packed.remainder == len(stream) % 16 == len(packed.blocks[-1]) % 16
    for block, words in zip(packed.blocks, packed.word_ids):
        assert len(block) == len(words)
        assert [w < 0 for w in words] == [t == SEP for t in block]
        present = sorted({w for w in words if w >= 0})
        assert present == list(range(len(present)))  # renumbered within the block


def test_chunk_sequence_keeps_every_token():
    ids, words = list(range(10)), [0, 0, 1, 2, 2, 2, 3, 4, 5, 5]
    chunks = chunk_sequence(ids, words, 4)
    assert [c for c, _ in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [w for _, w in chunks] == [[0, 0, 1, 2], [0, 0, 1, 2], [0, 0]]


def test_english_word_pieces_share_a_word(minilm_tokenizer):
    [(ids, words)] = encode_texts(minilm_tokenizer, ["Intravenous azithromycin-induced ototoxicity."])
    pieces = minilm_tokenizer.convert_ids_to_tokens(ids)
    by_word = {}
    for piece, word in zip(pieces, words):
        by_word.setdefault(word, []).append(piece)
    assert ["".join(p.removeprefix("##") for p in group) for group in by_word.values()] == [
        "intravenous",
        "azithromycin",
        "-",
        "induced",
        "ototoxicity",
        ".",
    ]


def test_chinese_characters_are_words():
    from transformers import AutoTokenizer

    from modeling_ade.encoders import M3E_SMALL, resolve_model_name, tokenizer_kwargs

    try:
        path = resolve_model_name(M3E_SMALL)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    tokenizer = AutoTokenizer.from_pretrained(path, **tokenizer_kwargs(M3E_SMALL))
    [(ids, words)] = encode_texts(tokenizer, ["頭痛和發燒"])
    assert len(ids) == 5 and words == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------------------------------
# leakage guard


def test_exclude_sentences_drops_and_cuts_exactly():
    test = ["Danazol induced thrombocytopenia.", "Rash after aspirin."]
    units = [
        TextUnit("1", "danazol  induced thrombocytopenia.", "f"),  # equal after normalisation: dropped
        TextUnit("2", "We diagnosed this case as danazol induced thrombocytopenia.", "f"),  # a phrase: kept
        TextUnit("3", "Background. Rash after aspirin. It resolved.", "f"),  # a sentence inside: cut out
        TextUnit("4", "Unrelated.", "f"),
    ]
    kept, dropped, cut = exclude_sentences(units, test)
    assert dropped == 1 and cut == 1
    assert [u.text for u in kept] == [units[1].text, "Background. It resolved.", "Unrelated."]


@pytest.mark.data
def test_exclude_fold_removes_exactly_the_fold_test_sentences(ade_data_dir):
    from datasets_scripts.ade_corpus import config_examples

    args = argparse.Namespace(
        train_file=[],
        text_column="text",
        dataset=["ade_corpus:fold_0"],
        data_dir=str(ade_data_dir),
        exclude_fold=0,
    )
    units, report = collect_units(args)
    fold = config_examples("fold_0", ade_data_dir)
    test = {matching_key(e["text"]) for e in fold["test"]}
    train_keys = {matching_key(e["text"]) for e in fold["train"]}
    assert {matching_key(u.text) for u in units} == train_keys
    assert report["exclude_fold"]["texts_dropped"] == len(test) == 427
    assert report["exclude_fold"]["sentences_cut_from_longer_texts"] == 0


@pytest.mark.data
def test_drug_dose_pseudo_config(ade_data_dir):
    args = argparse.Namespace(
        train_file=[],
        text_column="text",
        dataset=["ade_corpus:drug_dose"],
        data_dir=str(ade_data_dir),
        exclude_fold=None,
    )
    units, report = collect_units(args)
    assert report["texts_read"] == {"ade_corpus:drug_dose": 213} and len(units) == 213


def test_dataset_spec_errors():
    assert parse_dataset_spec("ade_corpus:fold_3:train") == ("ade_corpus", "fold_3", "train")
    assert parse_dataset_spec("chinese_healthner:train") == ("chinese_healthner", "train", None)
    with pytest.raises(ValueError, match="unknown corpus 'ade'"):
        parse_dataset_spec("ade:negatives")
    with pytest.raises(ValueError, match="unknown ade_corpus config 'fold_10'"):
        parse_dataset_spec("ade_corpus:fold_10")


# ----------------------------------------------------------------------------------------------------
# end to end


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, minilm_tokenizer):
    """A random 2-layer BERT with the MiniLM vocabulary, saved like a pre-trained encoder (no MLM head)."""
    from transformers import BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_bert")
    BertModel(tiny_encoder_config(len(minilm_tokenizer))).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    rng = random.Random(0)
    words = "aspirin caused a rash fever resolved after stopping the drug dose was reduced patient".split()
    lines = []
    for _document in range(12):
        for _ in range(3):
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))).capitalize() + ".")
        lines.append("")
    path = folder / "notes.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_end_to_end_checkpoint_feeds_the_fine_tuning_models(tmp_path, tiny_checkpoint, corpus_file):
    from transformers import AutoModel, AutoModelForMaskedLM

    from modeling_ade.hub.modeling_joint_ner_re import JointNerReForAdeExtraction

    out = tmp_path / "out"
    metrics = run(
        mlm_args(
            ["--model", str(tiny_checkpoint), "--output-dir", str(out), "--train-file", str(corpus_file)]
            + ["--epochs", "1", "--batch-size", "4", "--max-length", "16", "--report-to", "none"]
            + ["--validation-split", "0.2", "--whole-word-masking", "--learning-rate", "1e-3"]
        )
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["before"]["masked_tokens"] == saved["after"]["masked_tokens"] > 0
    assert saved["after"]["perplexity"] == pytest.approx(metrics["after"]["perplexity"])
    assert any(name.startswith("cls.predictions") for name in saved["newly_initialised_weights"])
    assert (out / "tokenizer.json").is_file() and (out / "training_args.json").is_file()

    mlm = AutoModelForMaskedLM.from_pretrained(out)
    trained = mlm.bert.embeddings.word_embeddings.weight
    start = AutoModel.from_pretrained(tiny_checkpoint).embeddings.word_embeddings.weight
    assert not torch.allclose(trained, start)  # it trained
    encoder = AutoModel.from_pretrained(out)
    assert torch.equal(encoder.embeddings.word_embeddings.weight, trained)
    joint = JointNerReForAdeExtraction.from_encoder(str(out))
    assert torch.equal(joint.encoder.embeddings.word_embeddings.weight, trained)
    try:
        from modeling_ade.hub.modeling_bert_crf import BertCrfForTokenClassification
    except ImportError:
        return
    crf = BertCrfForTokenClassification.from_encoder(str(out))
    assert torch.equal(crf.encoder.embeddings.word_embeddings.weight, trained)


def test_end_to_end_packing_and_nsp(tmp_path, tiny_checkpoint, corpus_file):
    from transformers import AutoModel

    common = ["--model", str(tiny_checkpoint), "--train-file", str(corpus_file), "--epochs", "1"]
    common += ["--batch-size", "8", "--max-length", "24", "--report-to", "none", "--validation-split", "0.25"]
    packed = run(mlm_args([*common, "--output-dir", str(tmp_path / "packed"), "--packing"]))
    assert packed["data"]["train"]["blocks"] >= 2
    nsp = run(mlm_args([*common, "--output-dir", str(tmp_path / "nsp"), "--nsp"]))
    assert 0.0 <= nsp["after"]["nsp_accuracy"] <= 1.0
    assert nsp["data"]["held_out"]["documents"] >= 2
    config = json.loads((tmp_path / "nsp" / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"]
    AutoModel.from_pretrained(tmp_path / "nsp")


def test_nsp_without_nsp_head_errors_clearly(tmp_path, corpus_file):
    from transformers import RobertaConfig, RobertaModel

    folder = tmp_path / "tiny_roberta"
    RobertaModel(
        RobertaConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
    ).save_pretrained(folder)
    args = mlm_args(
        [
            "--model",
            str(folder),
            "--output-dir",
            str(tmp_path / "o"),
            "--train-file",
            str(corpus_file),
            "--nsp",
        ]
    )
    with pytest.raises(
        ValueError, match=r"--nsp needs an encoder with a next-sentence-prediction head.*roberta"
    ):
        run(args)


def test_packing_with_nsp_is_rejected(tmp_path, tiny_checkpoint, corpus_file):
    with pytest.raises(ValueError, match="--packing and --nsp cannot be combined"):
        mlm_args(
            ["--model", str(tiny_checkpoint), "--output-dir", str(tmp_path), "--train-file", str(corpus_file)]
            + ["--nsp", "--packing"]
        )


def test_every_mlm_flag_has_help():
    parser = train.build_parser(only="mlm")
    mlm = next(a for a in parser._actions if a.dest == "task").choices["mlm"]
    for action in mlm._actions:
        assert action.help, action.option_strings


def test_checkpoints_of_a_model_with_tied_weights_save_and_resume(tmp_path, tiny_checkpoint, corpus_file):
    """The MLM decoder shares the word embeddings: Accelerate's save_state / load_state must handle that."""
    from safetensors.torch import load_file

    from modeling_ade.checkpointing import STATE_FILE, list_checkpoints

    out = tmp_path / "out"
    argv = ["--model", str(tiny_checkpoint), "--output-dir", str(out), "--train-file", str(corpus_file)]
    argv += ["--epochs", "2", "--batch-size", "4", "--max-length", "16", "--report-to", "none"]
    argv += ["--validation-split", "0.2", "--checkpoint-every", "3", "--keep-checkpoints", "0"]
    run(mlm_args(argv))
    checkpoints = list_checkpoints(out)
    assert len(checkpoints) >= 2
    first = checkpoints[0]
    assert json.loads((first / STATE_FILE).read_text())["global_step"] == 3
    saved = load_file(first / "model.safetensors")
    assert any("word_embeddings" in name for name in saved)
    resumed = run(mlm_args([*argv, "--resume-from", str(first)]))
    assert len(resumed["train_history"]) == 2 and resumed["after"]["masked_tokens"] > 0
