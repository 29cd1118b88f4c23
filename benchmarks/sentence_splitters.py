"""Sentence splitters on abstracts rebuilt from the ADE corpus, whose sentences give gold boundaries.

The sentences of each PubMed id (DRUG-AE.rel, then ADE-NEG.txt, in file order) are joined with one space;
a splitter is scored on recovering exactly those sentence spans. 1,000 seeded abstracts.

    pip install --target /tmp/splitters pysbd syntok blingfire nupunkt regex   # the alternatives, not deps
    PYTHONPATH=/tmp/splitters .venv/bin/python benchmarks/sentence_splitters.py [--data-dir DIR]

A splitter that is not installed is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict

from datasets_scripts.ade_corpus import NEGATIVES_FILE, RELATIONS_FILE, resolve_corpus_dir


def rebuilt_abstracts(data_dir, n: int, seed: int = 0) -> tuple[list[str], list[set[tuple[int, int]]]]:
    folder = resolve_corpus_dir(data_dir)
    docs: dict[str, list[str]] = defaultdict(list)
    for line in (folder / RELATIONS_FILE).read_text(encoding="utf-8").splitlines():
        pmid, sentence = line.split("|")[:2]
        if sentence not in docs[pmid]:
            docs[pmid].append(sentence)
    for line in (folder / NEGATIVES_FILE).read_text(encoding="utf-8").splitlines():
        pmid, _, sentence = line.split(" ", 2)
        if sentence not in docs[pmid]:
            docs[pmid].append(sentence)
    pmids = sorted(docs)
    random.Random(seed).shuffle(pmids)
    texts, gold = [], []
    for pmid in pmids[:n]:
        spans, cursor = set(), 0
        for sentence in docs[pmid]:
            spans.add((cursor, cursor + len(sentence)))
            cursor += len(sentence) + 1
        texts.append(" ".join(docs[pmid]))
        gold.append(spans)
    return texts, gold


def spans_of(text: str, sentences) -> list[tuple[int, int]]:
    out, cursor = [], 0
    for sentence in sentences:
        sentence = sentence.strip()
        if sentence:
            start = text.index(sentence, cursor)
            out.append((start, start + len(sentence)))
            cursor = start + len(sentence)
    return out


def splitters():
    from modeling_ade.hub.pipeline_ade_extraction import sentence_spans

    yield "sentencex (used)", lambda t: sentence_spans(t, "en")
    try:
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
        yield "pysbd", lambda t: [(s.start, s.start + len(s.sent.rstrip())) for s in seg.segment(t)]
    except ImportError:
        print("pysbd: not installed, skipped")
    try:
        import syntok.segmenter as syntok

        def run_syntok(t):
            return [
                (s[0].offset, s[-1].offset + len(s[-1].value))
                for para in syntok.analyze(t)
                for s in (list(x) for x in para)
            ]

        yield "syntok", run_syntok
    except ImportError:
        print("syntok: not installed, skipped")
    try:
        import blingfire

        yield "blingfire", lambda t: [tuple(o) for o in blingfire.text_to_sentences_and_offsets(t)[1]]
    except ImportError:
        print("blingfire: not installed, skipped")
    try:
        from nupunkt import sent_tokenize

        yield "nupunkt", lambda t: spans_of(t, sent_tokenize(t))
    except ImportError:
        print("nupunkt: not installed, skipped")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=None, help="ADE corpus folder (default: as train.py)")
    parser.add_argument("--abstracts", type=int, default=1000, help="abstracts to rebuild (default: 1000)")
    args = parser.parse_args()
    texts, gold = rebuilt_abstracts(args.data_dir, args.abstracts)
    print(f"{len(texts)} abstracts, {sum(map(len, gold))} sentences\n")
    print(
        "| splitter | sentence P | sentence R | sentence F1 | abstracts exact | seconds |\n|---|---|---|---|---|---|"
    )
    for name, split in splitters():
        started = time.perf_counter()
        correct = predicted = exact = 0
        for text, spans in zip(texts, gold):
            found = set(split(text))
            correct += len(found & spans)
            predicted += len(found)
            exact += found == spans
        seconds = time.perf_counter() - started
        n_gold = sum(map(len, gold))
        p, r = correct / predicted, correct / n_gold
        print(
            f"| {name} | {p:.4f} | {r:.4f} | {2 * p * r / (p + r):.4f} | {exact / len(texts):.3f} | {seconds:.2f} |"
        )


if __name__ == "__main__":
    main()
