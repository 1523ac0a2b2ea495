"""Augmentation of training reviews: ops, negations, determinism, lexicon, back-translation."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mgi_core.config import TrainConfig
from mgi_core.encoder import augment
from mgi_core.encoder.augment import (
    ZH_NEGATION_CHARS,
    build_augmenter,
    has_cjk,
    is_negation,
    load_lexicon,
    parse_lexicon,
)
from mgi_core.encoder.tasks import build_task_data
from mgi_core.errors import EncoderLoadError
from tests.conftest import ROOT

EN = "Great headphones, the bass is clear and the battery lasts a long time."
ZH = "这个耳机音质非常好，电池很耐用，包装也漂亮，卖家发货快速。"
EN_NEG = "The sound is not bad and I never had problems, but I don't love the flimsy cable."
ZH_NEG = "耳机音质不好，电池没有问题，别买这个，无线连接很方便。"


def augmenter(ops: tuple[str, ...], share: float = 1.0, rate: float = 0.2, seed: int = 13,
              **kw):
    return build_augmenter(TrainConfig(augment=ops, augment_share=share, augment_rate=rate,
                                       **kw), seed)


def words(text: str) -> list[str]:
    """Word-level pieces: whitespace words for English, the augmenter's segmentation for ZH."""
    if has_cjk(text):
        return [t.core for t in augment._split_chinese(text, load_lexicon("zh")) if t.core]
    return [t.core for t in augment._split_english(text) if t.core]


# ------------------------------------------------------------------------------ ops


@pytest.mark.parametrize("op", ["delete", "swap", "synonym"])
@pytest.mark.parametrize("text", [EN, ZH])
def test_each_op_changes_english_and_chinese_text(op: str, text: str) -> None:
    aug = augmenter((op,))
    assert aug.ops == (op,) and aug.notices == []
    (out,) = aug.apply([text], [7], epoch=1)
    assert out != text
    before, after = words(text), words(out)
    n = len(before)  # EN 14 words, rate 0.2 -> round(2.8) = 3 changes; ZH about as many
    if op == "delete":
        assert 0 < n - len(after) <= round(0.2 * n) and after != before
        assert all(w in before for w in after)
    elif op == "swap":  # the same words, another order
        assert sorted(after) == sorted(before)
    else:  # the same number of words, some replaced
        assert len(after) == n and 1 <= sum(a != b for a, b in zip(before, after, strict=True)) <= 3
    if not has_cjk(text):
        assert out.endswith(".")  # sentence punctuation keeps its place
    else:
        assert out.endswith("。") and "，" in out


def test_words_in_chinese_are_segmented_by_longest_match_and_rejoined_without_spaces() -> None:
    zh = load_lexicon("zh")
    pieces = augment._split_chinese("这个耳机音质非常好，很多人喜欢。", zh)
    assert [t.core or t.prefix for t in pieces] == [
        "这个", "耳机", "音质", "非常", "好", "，", "很多", "人", "喜欢", "。"]
    assert augment._join(pieces, chinese=True) == "这个耳机音质非常好，很多人喜欢。"
    mixed = augment._split_chinese("蓝牙 headphones 很好用!", zh)
    assert [t.core for t in mixed if t.core] == ["蓝牙", "headphones", "很", "好用"]


def test_apply_returns_as_many_texts_in_order_and_leaves_the_input_alone(snapshot) -> None:
    texts = list(snapshot["text"][:40])
    copy = list(texts)
    out = augmenter(("delete", "swap"), share=0.5).apply(texts, range(40), epoch=1)
    assert len(out) == 40 and texts == copy
    changed = [a != b for a, b in zip(texts, out, strict=True)]
    assert 8 <= sum(changed) <= 32  # about half of 40 (share 0.5)
    for a, b in zip(texts, out, strict=True):  # its own input's words, fewer or swapped
        assert Counter(words(b)) <= Counter(words(a)) and len(words(b)) >= len(words(a)) - 2


def test_augmented_batch_keeps_length_and_the_callers_labels(snapshot) -> None:
    data = build_task_data(snapshot, TrainConfig(tasks=("overall", "category")))
    idx = np.arange(16)
    texts = [data.train.texts[i] for i in idx]
    labels = {t: data.train.labels[t][idx].copy() for t in ("overall", "category")}
    out = augmenter(("delete", "swap", "synonym")).apply(texts, idx.tolist(), epoch=1)
    assert len(out) == len(texts) == len(labels["overall"])
    assert out != texts and texts == [data.train.texts[i] for i in idx]
    for task, values in labels.items():  # apply() never sees labels; the data is untouched
        assert np.array_equal(data.train.labels[task][idx], values)


def test_keys_must_match_the_texts() -> None:
    with pytest.raises(ValueError, match="one key per text"):
        augmenter(("swap",)).apply(["a b", "c d"], [1], epoch=1)


def test_negations_and_the_word_they_govern_survive_every_op() -> None:
    for ops in [("delete",), ("synonym",), ("swap",), ("synonym", "swap", "delete")]:
        aug = augmenter(ops, rate=0.5)
        for epoch in range(1, 30):
            en, zh = aug.apply([EN_NEG, ZH_NEG], [1, 2], epoch)
            assert [w for w in words(en) if is_negation(w)] == ["not", "never", "don't"]
            assert "not bad" in en and "never had" in en and "don't love" in en
            zh_neg = [w for w in words(zh) if is_negation(w)]
            assert zh_neg == ["不", "没有", "别", "无线"]
            assert "不好" in zh and "没有问题" in zh and "别买" in zh


def test_one_word_texts_and_empty_texts_pass_unchanged() -> None:
    aug = augmenter(("delete", "swap", "synonym"))
    assert aug.apply(["Great", "", "好"], [1, 2, 3], epoch=1) == ["Great", "", "好"]


def test_deletion_never_removes_every_word() -> None:
    aug = augmenter(("delete",), rate=0.5)
    for epoch in range(1, 20):
        # rate 0.5: 2 words -> 1 deleted, 4 words -> 2; a negation and its word stay
        out = aug.apply(["good sound", "not good", "a b c d"], [1, 2, 3], epoch)
        assert len(out[0].split()) == 1 and out[1] == "not good" and len(out[2].split()) == 2


# ------------------------------------------------------------------------------ randomness


def test_same_key_and_epoch_give_the_same_text_whatever_the_batch(snapshot) -> None:
    texts = list(snapshot["text"][:30])
    aug = augmenter(("delete", "swap", "synonym"), share=0.6)
    full = aug.apply(texts, range(30), epoch=2)
    order = np.random.default_rng(0).permutation(30)
    for chunk in np.array_split(order, 4):  # other batches, other order
        part = aug.apply([texts[i] for i in chunk], chunk.tolist(), epoch=2)
        assert part == [full[i] for i in chunk]
    alone = [aug.apply([texts[i]], [i], epoch=2)[0] for i in range(30)]
    assert alone == full
    again = augmenter(("delete", "swap", "synonym"), share=0.6).apply(texts, range(30), 2)
    assert again == full


def test_another_epoch_or_seed_gives_another_augmentation(snapshot) -> None:
    texts = list(snapshot["text"][:30])
    aug = augmenter(("delete", "swap"))
    one, two = aug.apply(texts, range(30), epoch=1), aug.apply(texts, range(30), epoch=2)
    assert sum(a != b for a, b in zip(one, two, strict=True)) >= 20
    other_seed = augmenter(("delete", "swap"), seed=14).apply(texts, range(30), epoch=1)
    assert sum(a != b for a, b in zip(one, other_seed, strict=True)) >= 20
    # with share 0.5 the augmented keys are drawn anew each epoch
    half = augmenter(("swap",), share=0.5)
    picked = [{k for k in range(200) if half.selected(k, e)} for e in (1, 2)]
    assert 60 <= len(picked[0]) <= 140 and picked[0] != picked[1]


def test_share_zero_is_the_identity_and_share_one_changes_every_multi_word_text(
        snapshot) -> None:
    texts = list(snapshot["text"])  # six distinct-ish words each
    assert augmenter(("delete", "swap", "synonym"), share=0.0).apply(
        texts, range(len(texts)), epoch=1) == texts
    for ops in [("delete",), ("swap",)]:
        out = augmenter(ops, share=1.0).apply(texts, range(len(texts)), epoch=1)
        assert all(a != b for a, b in zip(texts, out, strict=True))


def test_no_augmentation_configured_gives_no_augmenter() -> None:
    assert build_augmenter(TrainConfig(), seed=1) is None


# ------------------------------------------------------------------------------ synonyms


def test_synonyms_come_from_the_same_lexicon_group_and_keep_capitals() -> None:
    rng = np.random.default_rng(0)
    for lang, sep in (("en", " "), ("zh", "，")):
        lex = load_lexicon(lang)
        for trial in range(20):
            picks = [lex.groups[int(g)][0] for g in rng.choice(len(lex.groups), 12, False)]
            text = sep.join(picks)
            (out,) = augmenter(("synonym",), rate=0.5).apply([text], [trial], epoch=1)
            new = out.split(sep)
            assert len(new) == len(picks) and new != picks
            for old, replaced in zip(picks, new, strict=True):
                assert lex.index[replaced.lower()] == lex.index[old.lower()]
    # rate 0.5 of 6 words = 3 replacements: the three forms of "great" ("headphones" has
    # no group)
    text = "Great GREAT great headphones headphones headphones"
    out = augmenter(("synonym",), rate=0.5).apply([text], [3], epoch=1)[0].split()
    group = load_lexicon("en").groups[load_lexicon("en").index["great"]]
    assert all(w.lower() in group and w.lower() != "great" for w in out[:3])
    assert out[0][0].isupper() and out[0][1:].islower()
    assert out[1].isupper() and out[2].islower() and out[3:] == ["headphones"] * 3


# ------------------------------------------------------------------------------ lexicon


def _raw_groups(language: str) -> list[list[str]]:
    text = (ROOT / "mgi_core/encoder/lexicon" / f"{language}.tsv").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_lexicon_has_no_negation_and_each_word_in_one_group(language: str) -> None:
    groups = _raw_groups(language)
    flat = [w for g in groups for w in g]
    assert len(flat) == len(set(flat)), sorted({w for w in flat if flat.count(w) > 1})
    assert all(len(g) >= 2 and all(w == w.strip() and w for w in g) for g in groups)
    assert not [w for w in flat if is_negation(w)]
    if language == "en":
        assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", w) for w in flat)
        assert not {"not", "no", "never", "nothing", "without"} & set(flat)
        assert len(groups) >= 300
    else:
        assert all(all(augment.is_cjk(c) for c in w) for w in flat)
        assert not [w for w in flat if set(w) & ZH_NEGATION_CHARS]
        assert len(groups) >= 200
    assert len(load_lexicon(language).groups) == len(groups)


def test_segmentation_words_do_not_repeat_lexicon_entries() -> None:
    text = (ROOT / "mgi_core/encoder/lexicon/zh_words.txt").read_text(encoding="utf-8")
    extra = [w for line in text.splitlines() if not line.startswith("#") for w in line.split()]
    assert len(extra) == len(set(extra)) >= 200
    assert not set(extra) & set(load_lexicon("zh").index)
    assert all(all(augment.is_cjk(c) for c in w) for w in extra)


def test_a_word_in_two_groups_or_a_lone_word_is_rejected() -> None:
    with pytest.raises(ValueError, match="already in group"):
        parse_lexicon("good\tnice\n# c\ngreat\tgood\n", "en")
    with pytest.raises(ValueError, match="two words or more"):
        parse_lexicon("good\n", "en")


# ------------------------------------------------------------------------------ back-translation


@pytest.mark.parametrize("folder", ["", "/nonexistent/mt", "forward-only"])
def test_backtranslation_is_skipped_with_a_notice_without_a_model_folder(
        folder: str, tmp_path: Path) -> None:
    if folder == "forward-only":
        (tmp_path / "forward").mkdir()
        folder = str(tmp_path)
    aug = augmenter(("backtranslate", "swap"), backtranslation_model=folder)
    assert aug.ops == ("swap",) and len(aug.notices) == 1
    assert aug.notices[0].startswith("back-translation skipped")
    assert "forward/" in aug.notices[0] and "backward/" in aug.notices[0]
    assert aug.apply([EN], [1], epoch=1)[0] != EN  # the other ops still run
    only = augmenter(("backtranslate",), backtranslation_model=folder)
    assert only is not None and only.ops == () and only.apply([EN], [1], 1) == [EN]


def test_a_folder_without_models_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "forward").mkdir()
    (tmp_path / "backward").mkdir()
    with pytest.raises(EncoderLoadError, match="cannot be loaded"):
        augmenter(("backtranslate",), backtranslation_model=str(tmp_path), device="cpu")


def build_tiny_translation_pair(folder: Path, corpus: list[str]) -> Path:
    """forward/ and backward/: randomly initialised 1-layer MarianMT models (d_model 16) with
    a word-level tokenizer built from ``corpus``; they 'translate' into other corpus words."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import (
        GenerationConfig,
        MarianConfig,
        MarianMTModel,
        PreTrainedTokenizerFast,
    )

    vocab = ["<pad>", "</s>", "<unk>"]
    vocab += sorted({w for t in corpus for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                        eos_token="</s>", unk_token="<unk>")
    for seed, name in enumerate(("forward", "backward")):
        torch.manual_seed(seed)
        model = MarianMTModel(MarianConfig(
            vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, max_position_embeddings=128, pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0, forced_eos_token_id=1))
        model.generation_config = GenerationConfig(
            decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, min_new_tokens=3)
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    return folder


def test_backtranslation_with_a_tiny_local_model_pair(tmp_path: Path, snapshot) -> None:
    texts = [*snapshot["text"][:6], EN]
    folder = build_tiny_translation_pair(tmp_path / "mt", texts)
    aug = augmenter(("backtranslate",), backtranslation_model=str(folder), device="cpu")
    assert aug.ops == ("backtranslate",) and aug.notices == []
    calls: list[int] = []

    def counting(batch, *args, **kw):
        calls.append(len(batch))
        return augment.translate(batch, *args, **kw)

    aug.backtranslator.translate_fn = counting
    out = aug.apply([*texts, *texts[:2]], [*range(len(texts)), 100, 101], epoch=1)
    assert len(out) == len(texts) + 2
    assert all(o.strip() and o != t for o, t in zip(out[:len(texts)], texts, strict=True))
    unique = len(set(texts))
    assert calls == [unique, unique]  # forward then backward, each text once
    assert out[-2:] == out[:2]  # the same text gives the same translation
    again = aug.apply(texts, range(len(texts)), epoch=2)
    assert calls == [unique, unique] and again == out[:len(texts)]  # cached
    with_words = augmenter(("backtranslate", "swap"), backtranslation_model=str(folder),
                           device="cpu").apply(texts, range(len(texts)), 1)
    assert with_words != out[:len(texts)]  # word ops run on the back-translated text
