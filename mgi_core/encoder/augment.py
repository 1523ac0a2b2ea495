"""Text augmentation of training reviews for fine-tuning (``TrainConfig.augment``).

Augmentation maps texts to texts and never sees a label: ``Augmenter.apply`` takes a batch
of review texts with a stable key per review (its index in the training set) and returns
the same number of texts in the same order, so the caller's labels stay attached to their
rows. The training loop passes training texts only (reviews and ``match`` pairs); validation
and test texts never reach this module.

Ops, applied in this fixed order to each augmented text (``OP_ORDER``):

- ``backtranslate``: translate to a pivot language and back with a local model pair (below);
  translations are cached per original text, so each review is translated once per run
  (greedy decoding, in the batch where the review is first augmented).
- ``synonym``: replace words by another member of their group in the shipped lexicon
  (``lexicon/en.tsv``, ``lexicon/zh.tsv``), keeping the capitalisation of English words.
- ``swap``: swap two words, several times.
- ``delete``: delete words, never all of them.

Each word-level op changes about ``augment_rate`` of a text's words, and at least one word
when the text has two or more. Labels stay true because negations are never touched:
negation words (not, no, never, n't forms, without, hardly …; 不 没 别 无 未 …) and the word
each one governs (the next word: "not *good*", 不*好*) are never deleted, swapped or
replaced, and no lexicon entry is a negation or contains a negation character.

Randomness is drawn per (seed, epoch, key), so a review's augmentation does not depend on
the batch it arrives in, and a new epoch gives a new draw. ``augment_share`` of the keys
are augmented in each epoch; the others pass through unchanged.

Languages: a text with a CJK character is segmented (no segmenter such as jieba is needed)
by greedy longest match against the Chinese lexicon's entries and a segmentation-only word
list (``lexicon/zh_words.txt``), other CJK characters one by one, Latin words and digits as
runs; punctuation and spaces are kept and the pieces re-joined without adding spaces. Other
texts are split on whitespace (punctuation stays attached to its word, and keeps its place
when words are swapped or replaced) and re-joined with single spaces.

Back-translation model folder (``TrainConfig.backtranslation_model``)::

    FOLDER/forward/    review language -> pivot language
    FOLDER/backward/   pivot language -> review language

each a transformers ``AutoModelForSeq2SeqLM`` folder with its tokenizer (for English
reviews, e.g. Helsinki-NLP/opus-mt-en-de and opus-mt-de-en, each saved with
``save_pretrained``). They are loaded with ``local_files_only=True`` (nothing downloads)
onto the training device. With the field empty, or a folder that lacks ``forward/`` or
``backward/``, the op is skipped and ``Augmenter.notices`` says so and how to enable it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mgi_core.config import TrainConfig
from mgi_core.errors import EncoderLoadError

log = logging.getLogger(__name__)

OP_ORDER: tuple[str, ...] = ("backtranslate", "synonym", "swap", "delete")
LANGUAGES: tuple[str, ...] = ("en", "zh")
LEXICON_FOLDER = "lexicon"

# English negations: compared lower-case, with ’ read as '. Any word ending in n't counts too.
EN_NEGATIONS: frozenset[str] = frozenset({
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "noone",
    "cannot", "without", "hardly", "barely", "scarcely", "seldom", "rarely", "unable",
    "lack", "lacks", "lacked", "lacking", "fail", "fails", "failed", "failing",
    "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent", "wont", "cant", "couldnt",
    "shouldnt", "wouldnt", "havent", "hasnt", "hadnt", "mustnt", "neednt", "aint",
})
# Chinese: a token containing one of these characters is a negation (不好, 没有, 别, 无 …).
# No lexicon entry may contain one. 非 is a negation only on its own (非常 means "very").
ZH_NEGATION_CHARS: frozenset[str] = frozenset("不没沒别別无無未勿莫甭否")
ZH_NEGATION_WORDS: frozenset[str] = frozenset({"非"})

_EDGES = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)
_SPACES = re.compile(r"\s+")


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (unified, extension A, compatibility)."""
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF
            or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F)


def has_cjk(text: str) -> bool:
    return any(is_cjk(c) for c in text)


def is_negation(word: str) -> bool:
    """True for a negation word, English or Chinese (see the module docstring)."""
    if any(c in ZH_NEGATION_CHARS for c in word) or word in ZH_NEGATION_WORDS:
        return True
    w = word.lower().replace("’", "'")
    return w in EN_NEGATIONS or w.endswith("n't")


# --------------------------------------------------------------------------- lexicon


@dataclass(frozen=True)
class Lexicon:
    """Synonym groups of one language; ``index`` maps a word (lower-case) to its group.

    ``vocabulary``: the words Chinese segmentation matches (the entries plus the
    segmentation-only word list).
    """

    language: str
    groups: tuple[tuple[str, ...], ...]
    index: Mapping[str, int]
    vocabulary: frozenset[str] = frozenset()

    @functools.cached_property
    def max_len(self) -> int:
        """Characters in the longest vocabulary word (the segmentation's look-ahead)."""
        return max((len(w) for w in self.vocabulary), default=0)

    def alternatives(self, word: str) -> tuple[str, ...]:
        """The other members of ``word``'s group (empty when it has none)."""
        group = self.index.get(word.lower())
        if group is None:
            return ()
        return tuple(w for w in self.groups[group] if w.lower() != word.lower())


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines that are neither blank nor '#' comments."""
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]


def parse_lexicon(text: str, language: str, words: str = "") -> Lexicon:
    """A lexicon from TSV text: one group per line, words separated by tabs, # comments.

    ``words``: more words for segmentation only (whitespace-separated, # comments).

    Raises:
        ValueError: a group with fewer than two words, or a word in two groups.
    """
    groups: list[tuple[str, ...]] = []
    index: dict[str, int] = {}
    for number, line in _lines(text):
        group = tuple(w.strip() for w in line.split("\t") if w.strip())
        if len(group) < 2:
            raise ValueError(f"{language} lexicon line {number}: a group needs two words or "
                             f"more, got {list(group)}")
        for word in group:
            key = word.lower()
            if key in index:
                raise ValueError(f"{language} lexicon line {number}: {word!r} is already in "
                                 f"group {list(groups[index[key]])}; a word may be in one group")
            index[key] = len(groups)
        groups.append(group)
    extra = {w for _, line in _lines(words) for w in line.split()}
    return Lexicon(language, tuple(groups), index, frozenset(index) | extra)


@functools.cache
def load_lexicon(language: str) -> Lexicon:
    """The shipped lexicon of ``language`` ('en' or 'zh'), read from the package resources."""
    if language not in LANGUAGES:
        raise ValueError(f"no lexicon for {language!r}; shipped: {list(LANGUAGES)}")
    folder = resources.files(__package__).joinpath(LEXICON_FOLDER)
    words = folder.joinpath(f"{language}_words.txt")
    return parse_lexicon(folder.joinpath(f"{language}.tsv").read_text(encoding="utf-8"),
                         language, words.read_text(encoding="utf-8") if words.is_file() else "")


# --------------------------------------------------------------------------- tokens


@dataclass
class _Token:
    """One piece of a text: ``core`` is the word (empty for punctuation or spaces)."""

    prefix: str
    core: str
    suffix: str = ""

    @property
    def is_word(self) -> bool:
        return bool(self.core)


def _split_english(text: str) -> list[_Token]:
    tokens = []
    for piece in text.split():
        prefix, core, suffix = _EDGES.match(piece).groups()  # type: ignore[union-attr]
        tokens.append(_Token(prefix, core, suffix) if core else _Token(piece, ""))
    return tokens


def _split_chinese(text: str, zh: Lexicon) -> list[_Token]:
    """Greedy longest match against the zh vocabulary, other CJK characters one by one, runs
    of letters/digits as words, spaces and punctuation kept as non-word pieces."""
    tokens: list[_Token] = []
    i, n, longest = 0, len(text), zh.max_len
    while i < n:
        c = text[i]
        if is_cjk(c):
            j = next((i + k for k in range(min(longest, n - i), 1, -1)
                      if text[i:i + k] in zh.vocabulary), i + 1)
            tokens.append(_Token("", text[i:j]))
        elif c.isalnum() or c == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "_'’-") and not is_cjk(text[j]):
                j += 1
            tokens.append(_Token("", text[i:j]))
        else:
            j = i + 1
            if c.isspace():
                while j < n and text[j].isspace():
                    j += 1
            tokens.append(_Token(text[i:j], ""))
        i = j
    return tokens


def _join(tokens: list[_Token], chinese: bool) -> str:
    """The pieces re-joined: Chinese as they are (spaces collapsed where a deleted word
    leaves two side by side), English with single spaces."""
    pieces = [t.prefix + t.core + t.suffix for t in tokens]
    if chinese:
        return _SPACES.sub(" ", "".join(pieces)).strip()
    return " ".join(p for p in pieces if p)


def _free_words(tokens: list[_Token]) -> list[int]:
    """Positions of the words an op may touch: not a negation, not the word right after one."""
    free, governed = [], False
    for i, token in enumerate(tokens):
        if not token.is_word:
            continue
        if is_negation(token.core):
            governed = True
            continue
        if not governed:
            free.append(i)
        governed = False
    return free


def _n_changes(n_words: int, rate: float) -> int:
    """About ``rate`` of the words, at least one when there are two words or more."""
    if n_words < 2:
        return 0
    return max(1, int(rate * n_words + 0.5))


def _match_case(original: str, replacement: str) -> str:
    """``replacement`` written like ``original``: UPPER (3+ letters), Title or as listed."""
    if len(original) >= 3 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


# --------------------------------------------------------------------------- word ops


def synonym_op(tokens: list[_Token], rate: float, rng: np.random.Generator,
               lexicons: Mapping[str, Lexicon]) -> list[_Token]:
    """Replace about ``rate`` of the words that have a lexicon group by another member."""
    n = _n_changes(sum(t.is_word for t in tokens), rate)

    def lexicon_of(word: str) -> Lexicon:
        return lexicons["zh"] if is_cjk(word[0]) else lexicons["en"]

    candidates = [i for i in _free_words(tokens)
                  if lexicon_of(tokens[i].core).alternatives(tokens[i].core)]
    if not n or not candidates:
        return tokens
    out = [_Token(t.prefix, t.core, t.suffix) for t in tokens]
    picked = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    for c in sorted(int(p) for p in picked):
        token = out[candidates[c]]
        options = lexicon_of(token.core).alternatives(token.core)
        token.core = _match_case(token.core, options[int(rng.integers(len(options)))])
    return out


def swap_op(tokens: list[_Token], rate: float, rng: np.random.Generator) -> list[_Token]:
    """Swap two different words about ``rate`` × words times (punctuation stays in place)."""
    n = _n_changes(sum(t.is_word for t in tokens), rate)
    free = _free_words(tokens)
    out = [_Token(t.prefix, t.core, t.suffix) for t in tokens]
    for _ in range(n):
        if len(free) < 2:
            break
        i = free[int(rng.integers(len(free)))]
        others = [j for j in free if out[j].core != out[i].core]
        if not others:
            break
        j = others[int(rng.integers(len(others)))]
        out[i].core, out[j].core = out[j].core, out[i].core
    return out


def delete_op(tokens: list[_Token], rate: float, rng: np.random.Generator) -> list[_Token]:
    """Delete about ``rate`` of the words, never all of them and never a negation.

    A deleted English word's punctuation moves to its neighbour ("sound, poor" loses
    "sound" → the comma joins the word before), so sentences keep their shape.
    """
    n_words = sum(t.is_word for t in tokens)
    free = _free_words(tokens)
    n = min(_n_changes(n_words, rate), len(free), n_words - 1)
    if n <= 0:
        return tokens
    gone = {free[int(p)] for p in rng.choice(len(free), size=n, replace=False)}
    out: list[_Token] = []
    carry = ""  # opening punctuation of a deleted word, for the next kept one
    for i, token in enumerate(tokens):
        if i in gone:
            carry += token.prefix
            if out:
                out[-1].suffix += token.suffix
            continue
        out.append(_Token(carry + token.prefix, token.core, token.suffix))
        carry = ""
    if carry and out:
        out[-1].suffix += carry
    return out


# --------------------------------------------------------------------------- back-translation


def translate(texts: list[str], model: Any, tokenizer: Any, batch_size: int = 16,
              max_length: int = 256) -> list[str]:
    """``texts`` through one seq2seq model (greedy decoding), in batches."""
    import torch

    device = next(model.parameters()).device
    out: list[str] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True,
                        max_length=max_length, return_token_type_ids=False).to(device)
        longest = int(enc["input_ids"].shape[1])
        with torch.inference_mode():
            ids = model.generate(**enc, num_beams=1, do_sample=False,
                                 max_new_tokens=min(max_length, 2 * longest + 8))
        out.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
    return out


@dataclass
class BackTranslator:
    """A forward (to the pivot language) and backward model pair, with a cache per text."""

    forward: tuple[Any, Any]  # (model, tokenizer)
    backward: tuple[Any, Any]
    batch_size: int = 16
    cache: dict[str, str] = field(default_factory=dict)
    translate_fn: Callable[..., list[str]] = translate

    def __call__(self, texts: list[str]) -> list[str]:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache and t.strip()]
        if todo:
            log.info("back-translating %d texts", len(todo))
            pivot = self.translate_fn(todo, *self.forward, batch_size=self.batch_size)
            back = self.translate_fn(pivot, *self.backward, batch_size=self.batch_size)
            for original, text in zip(todo, back, strict=True):
                self.cache[original] = text.strip() or original  # an empty output keeps it
        return [self.cache.get(t, t) for t in texts]


def _load_seq2seq(folder: Path, device: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSeq2SeqLM.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise EncoderLoadError(
            f"The back-translation model in {folder} cannot be loaded ({err}). It must be a "
            "transformers sequence-to-sequence model (e.g. MarianMT) saved with its tokenizer "
            "by save_pretrained; or clear backtranslation_model to skip back-translation."
        ) from err
    return model.eval().to(device), tokenizer


def _backtranslation_problem(folder: str) -> str | None:
    """Why back-translation is skipped (a notice), or None when the folder looks usable."""
    how = ("To enable it, set backtranslation_model to a folder with forward/ (review "
           "language -> pivot) and backward/ (pivot -> review language), each a local "
           "transformers seq2seq model with its tokenizer, e.g. Helsinki-NLP/opus-mt-en-de "
           "and opus-mt-de-en saved with save_pretrained.")
    if not folder.strip():
        return f"back-translation skipped: no backtranslation_model folder is set. {how}"
    root = Path(folder).expanduser()
    if not root.is_dir():
        return f"back-translation skipped: the folder {root} does not exist. {how}"
    missing = [p.name for p in (root / "forward", root / "backward") if not p.is_dir()]
    if missing:
        return (f"back-translation skipped: {root} has no {' or '.join(missing)} "
                f"subfolder. {how}")
    return None


def load_backtranslator(folder: str | Path, device_preference: str = "auto") -> BackTranslator:
    """The model pair in ``folder`` (forward/, backward/) on the chosen device.

    Raises:
        EncoderLoadError: a subfolder is not a loadable seq2seq model with its tokenizer.
    """
    from mgi_core.encoder.device import choose_device

    device = choose_device(device_preference).torch_device
    root = Path(folder).expanduser()
    return BackTranslator(_load_seq2seq(root / "forward", device),
                          _load_seq2seq(root / "backward", device))


# --------------------------------------------------------------------------- augmenter


def _entropy(*values: int) -> list[int]:
    return [int(v) & 0xFFFF_FFFF_FFFF_FFFF for v in values]  # negatives map to distinct ints


@dataclass
class Augmenter:
    """Applies ``ops`` (in ``OP_ORDER``) to a share of the texts, per (seed, epoch, key)."""

    ops: tuple[str, ...]
    rate: float
    share: float
    seed: int
    notices: list[str] = field(default_factory=list)
    backtranslator: BackTranslator | None = None
    lexicons: Mapping[str, Lexicon] = field(
        default_factory=lambda: {lang: load_lexicon(lang) for lang in LANGUAGES}
    )

    def selected(self, key: int, epoch: int) -> bool:
        """Whether the text with ``key`` is augmented in ``epoch``."""
        rng = np.random.default_rng(_entropy(self.seed, epoch, key, 0))
        return bool(rng.random() < self.share)

    def apply(self, texts: list[str], keys: Sequence[int], epoch: int) -> list[str]:
        """``texts`` with a share of them augmented; same length, same order.

        Args:
            texts: training texts (never validation or test ones).
            keys: one stable id per text (its index in the training set); the draw
                depends on (seed, epoch, key) only, never on the rest of the batch.
            epoch: the training epoch; each epoch draws anew.
        """
        if len(keys) != len(texts):
            raise ValueError(f"apply() needs one key per text: {len(texts)} texts, "
                             f"{len(keys)} keys")
        out = list(texts)
        chosen = [i for i, key in enumerate(keys) if self.ops and self.selected(key, epoch)]
        if not chosen:
            return out
        if "backtranslate" in self.ops and self.backtranslator is not None:
            back = self.backtranslator([out[i] for i in chosen])
            for i, text in zip(chosen, back, strict=True):
                out[i] = text
        for i in chosen:
            out[i] = self._word_ops(out[i], int(keys[i]), epoch)
        return out

    def _word_ops(self, text: str, key: int, epoch: int) -> str:
        if not set(self.ops) - {"backtranslate"}:
            return text
        chinese = has_cjk(text)
        tokens = _split_chinese(text, self.lexicons["zh"]) if chinese else _split_english(text)
        for number, op in enumerate(OP_ORDER):
            if op not in self.ops or op == "backtranslate":
                continue
            rng = np.random.default_rng(_entropy(self.seed, epoch, key, number + 1))
            if op == "synonym":
                tokens = synonym_op(tokens, self.rate, rng, self.lexicons)
            elif op == "swap":
                tokens = swap_op(tokens, self.rate, rng)
            else:
                tokens = delete_op(tokens, self.rate, rng)
        return _join(tokens, chinese)


def build_augmenter(config: TrainConfig, seed: int) -> Augmenter | None:
    """The augmenter ``config.augment`` asks for, or None when augmentation is off.

    Back-translation is active only with a usable ``config.backtranslation_model`` folder;
    otherwise it is left out of ``Augmenter.ops`` and a notice says why.

    Raises:
        EncoderLoadError: the back-translation folder's models cannot be loaded.
    """
    if not config.augment:
        return None
    notices: list[str] = []
    translator = None
    ops = tuple(op for op in OP_ORDER if op in config.augment)
    if "backtranslate" in ops:
        problem = _backtranslation_problem(config.backtranslation_model)
        if problem is None:
            translator = load_backtranslator(config.backtranslation_model, config.device)
        else:
            notices.append(problem)
            ops = tuple(op for op in ops if op != "backtranslate")
    return Augmenter(ops=ops, rate=config.augment_rate, share=config.augment_share,
                     seed=seed, notices=notices, backtranslator=translator)
