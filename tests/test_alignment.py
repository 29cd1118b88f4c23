"""alignment.py: character-offset entities -> first-sub-word labels and last-sub-word spans."""

from modeling_ade.alignment import IGNORE, align_entities_to_subwords, word_spans
from modeling_ade.hub.bio import bio_labels

LABEL2ID = {label: i for i, label in enumerate(bio_labels(["Drug", "Adverse-Effect"]))}
ID2LABEL = {i: label for label, i in LABEL2ID.items()}


def align(tokenizer, text, entities, max_length=128):
    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
    aligned = align_entities_to_subwords(enc["offset_mapping"], enc.word_ids(), entities, LABEL2ID, len(text))
    return enc, aligned


def labelled(enc, aligned):
    """(token text, label) for every token that carries a label."""
    tokens = enc.tokens()
    return [(tokens[i], ID2LABEL[lab]) for i, lab in enumerate(aligned.labels) if lab != IGNORE]


def test_first_subword_gets_the_label_and_last_subword_ends_the_span(minilm_tokenizer):
    text = "Intravenous azithromycin-induced ototoxicity."
    drug, effect = (12, 24, "Drug"), (33, 44, "Adverse-Effect")
    enc, aligned = align(minilm_tokenizer, text, [drug, effect])
    tokens = enc.tokens()
    first, last = aligned.token_spans[0]
    assert last > first, "azithromycin is several word pieces"
    assert aligned.labels[first] == LABEL2ID["B-Drug"]
    assert all(aligned.labels[i] == IGNORE for i in range(first + 1, last + 1))
    assert enc["offset_mapping"][first][0] == 12 and enc["offset_mapping"][last][1] == 24
    assert tokens[0] == "[CLS]" and aligned.labels[0] == IGNORE
    e_first, e_last = aligned.token_spans[1]
    assert text[enc["offset_mapping"][e_first][0] : enc["offset_mapping"][e_last][1]] == "ototoxicity"
    assert [lab for _, lab in labelled(enc, aligned)].count("O") == 4  # Intravenous, -, induced, .


def test_accents_keep_offsets_into_the_original_text(minilm_tokenizer):
    text = "Naïve patients on café-au-lait régimen had réactions to méthotrexate."
    start = text.index("méthotrexate")
    enc, aligned = align(minilm_tokenizer, text, [(start, start + len("méthotrexate"), "Drug")])
    first, last = aligned.token_spans[0]
    assert text[enc["offset_mapping"][first][0] : enc["offset_mapping"][last][1]] == "méthotrexate"
    assert aligned.counts.not_on_word_boundary == 0


def test_cjk_characters_are_words(minilm_tokenizer):
    text = "服用阿斯匹靈後出現胃痛"
    enc, aligned = align(minilm_tokenizer, text, [(2, 6, "Drug"), (9, 11, "Adverse-Effect")])
    tags = [lab for _, lab in labelled(enc, aligned)]
    assert tags == [
        "O",
        "O",
        "B-Drug",
        "I-Drug",
        "I-Drug",
        "I-Drug",
        "O",
        "O",
        "O",
        "B-Adverse-Effect",
        "I-Adverse-Effect",
    ]


def test_emoji_before_an_entity(minilm_tokenizer):
    text = "aspirin 😀😀 gave a rash"
    start = text.index("rash")
    enc, aligned = align(minilm_tokenizer, text, [(0, 7, "Drug"), (start, start + 4, "Adverse-Effect")])
    first, last = aligned.token_spans[1]
    assert text[enc["offset_mapping"][first][0] : enc["offset_mapping"][last][1]] == "rash"


def test_repeated_mentions_are_placed_at_their_own_offsets(minilm_tokenizer):
    text = "aspirin and then aspirin again"
    enc, aligned = align(minilm_tokenizer, text, [(0, 7, "Drug"), (17, 24, "Drug")])
    spans = [tuple(enc["offset_mapping"][i][0] for i in (a, b)) for a, b in aligned.token_spans]
    assert spans[0][0] == 0 and spans[1][0] == 17
    assert [lab for _, lab in labelled(enc, aligned)].count("B-Drug") == 2


def test_overlapping_entity_kept_for_relations_but_counted(minilm_tokenizer):
    text = "lithium toxicity"
    enc, aligned = align(minilm_tokenizer, text, [(0, 16, "Adverse-Effect"), (0, 7, "Drug")])
    assert aligned.counts.overlapping_skipped_in_ner == 1
    assert all(span is not None for span in aligned.token_spans)
    assert [lab for _, lab in labelled(enc, aligned)] == ["B-Adverse-Effect", "I-Adverse-Effect"]


def test_truncated_entity_is_counted_not_silently_dropped(minilm_tokenizer):
    text = "word " * 20 + "aspirin"
    start = text.index("aspirin")
    enc, aligned = align(minilm_tokenizer, text, [(start, start + 7, "Drug"), (0, 4, "Drug")], max_length=8)
    assert aligned.token_spans[0] is None and aligned.counts.cut_by_truncation == 1
    assert aligned.token_spans[1] is not None


def test_entity_inside_a_word_is_widened_and_counted(minilm_tokenizer):
    text = "azithromycininduced ototoxicity"
    enc, aligned = align(minilm_tokenizer, text, [(0, 12, "Drug")])
    assert aligned.counts.not_on_word_boundary == 1
    first, last = aligned.token_spans[0]
    assert enc["offset_mapping"][last][1] == len("azithromycininduced")


def test_word_spans_groups_subwords():
    offsets = [(0, 0), (0, 3), (3, 5), (6, 8), (0, 0)]
    word_ids = [None, 0, 0, 1, None]
    assert word_spans(offsets, word_ids) == [(0, 5, 1, 2), (6, 8, 3, 3)]
