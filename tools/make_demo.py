"""Deterministic demo review dataset with planted multi-granularity interests.

The demo data lets the dashboard start with something to show before anyone uploads
a file, and gives tests a dataset whose ground truth is known. Every user gets a
favourite L1 category (most of their reviews, high ratings), a favourite L2 inside it
and a favourite L3 inside that; about half of the users also get a disliked L1 (a few
reviews, low ratings); the rest of their reviews are noise with middling ratings. About
5 % of users are cold (a single review).

Review texts are composed from sentence pools specific to the L3 leaf, the L2 branch
and the sentiment, so an encoder can learn both the category and the rating from text.

This is a tool of the repository, not part of the ``mgi_core`` package: the package ships
only the files it wrote (``mgi_core/demo/``, read by ``mgi load-demo``). The names and
sentence pools live in ``tools/demo_vocabulary.json``. Regenerate the committed files, from
the repository root, with::

    python tools/make_demo.py mgi_core/demo
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("user_id", "item_id", "text", "rating", "timestamp", "category", "item_title")
CATEGORY_SEPARATOR = " > "

# 2022-01-01 00:00:00 UTC .. 2024-12-31 23:59:59 UTC, in unix seconds.
_T_START = 1_640_995_200
_T_END = 1_735_689_599

_COLD_SHARE = 0.05
_MIN_REVIEWS, _MAX_REVIEWS = 4, 20
_ITEMS_PER_LEAF = (5, 8)  # inclusive range
_NEWLINE_PROB = 0.05
_TITLE_MENTION_PROB = 0.35

# Rating distributions per role: (ratings, probabilities).
_RATINGS_FAVOURITE = ((3, 4, 5), (0.05, 0.35, 0.60))
_RATINGS_FAVOURITE_L1_OTHER = ((3, 4, 5), (0.20, 0.50, 0.30))
_RATINGS_COLD = ((4, 5), (0.40, 0.60))
_RATINGS_DISLIKED = ((1, 2), (0.55, 0.45))
_RATINGS_NOISE = ((1, 2, 3, 4, 5), (0.05, 0.17, 0.45, 0.28, 0.05))

# The sentence pools and names are data: tools/demo_vocabulary.json. The category tree:
# each L2 carries its own sentences; each L3 carries title nouns, aspects (singular and
# plural noun phrases) and handwritten pos/neg/mixed sentences. Books use "book_nouns" +
# "subtitle" instead of brand + product noun. Openings are by rating; features and
# closings by polarity.
VOCABULARY_PATH = Path(__file__).resolve().with_name("demo_vocabulary.json")


def load_vocabulary(path: Path = VOCABULARY_PATH) -> dict[str, Any]:
    """Read the demo vocabulary (category tree and sentence pools) from its JSON file.

    Args:
        path: The vocabulary file; the one beside this script by default.

    Returns:
        The parsed file, with the openings keyed by int rating (JSON keys are strings).
    """
    vocabulary = json.loads(path.read_text(encoding="utf-8"))
    vocabulary["openings"] = {int(k): v for k, v in vocabulary["openings"].items()}
    return vocabulary


_VOCABULARY = load_vocabulary()
_BRANDS: list[str] = _VOCABULARY["brands"]
_BOOK_ADJECTIVES: list[str] = _VOCABULARY["book_adjectives"]
_TREE: dict[str, dict[str, dict[str, Any]]] = _VOCABULARY["tree"]
_OPENINGS: dict[int, list[str]] = _VOCABULARY["openings"]
_CLOSINGS: dict[str, list[str]] = _VOCABULARY["closings"]
_ASPECT_TEMPLATES: dict[str, list[str]] = _VOCABULARY["aspect_templates"]
_POS_ADJECTIVES: list[str] = _VOCABULARY["pos_adjectives"]
_NEG_ADJECTIVES: list[str] = _VOCABULARY["neg_adjectives"]
_TITLE_OPENERS_PRODUCT: list[str] = _VOCABULARY["title_openers_product"]
_TITLE_OPENERS_BOOK: list[str] = _VOCABULARY["title_openers_book"]
_WHEN_PRODUCT: list[str] = _VOCABULARY["when_product"]
_WHEN_BOOK: list[str] = _VOCABULARY["when_book"]


def _pick(rng: np.random.Generator, seq: Any) -> Any:
    """Return one element of a sequence, chosen uniformly."""
    return seq[int(rng.integers(len(seq)))]


def _draw_rating(rng: np.random.Generator, spec: tuple[tuple[int, ...], tuple[float, ...]]) -> int:
    """Draw an int rating from a (values, probabilities) pair."""
    values, probs = spec
    return int(values[int(rng.choice(len(values), p=np.asarray(probs)))])


def _leaf_paths() -> list[tuple[str, str, str]]:
    """All (L1, L2, L3) triples of the tree, in tree order."""
    return [
        (l1, l2, l3)
        for l1, branches in _TREE.items()
        for l2, branch in branches.items()
        for l3 in branch["leaves"]
    ]


def _path(*parts: str) -> str:
    return CATEGORY_SEPARATOR.join(parts)


def _build_catalog(rng: np.random.Generator) -> list[dict[str, Any]]:
    """Create the items: id, leaf, title and a popularity weight within the leaf."""
    items: list[dict[str, Any]] = []
    titles: set[str] = set()
    for l1, l2, l3 in _leaf_paths():
        leaf = _TREE[l1][l2]["leaves"][l3]
        n_items = int(rng.integers(_ITEMS_PER_LEAF[0], _ITEMS_PER_LEAF[1] + 1))
        # Zipf-like popularity within the leaf, in random order.
        ranks = rng.permutation(n_items) + 1
        for k in range(n_items):
            title = ""
            for _ in range(100):
                if "book_nouns" in leaf:
                    title = (
                        f"The {_pick(rng, _BOOK_ADJECTIVES)} "
                        f"{_pick(rng, leaf['book_nouns'])}{leaf['subtitle']}"
                    )
                else:
                    title = f"{_pick(rng, _BRANDS)} {_pick(rng, leaf['nouns'])}"
                if title not in titles:
                    break
            else:  # pragma: no cover - the pools are large enough
                raise RuntimeError(f"could not find a unique title for {l1}/{l2}/{l3}")
            titles.add(title)
            items.append(
                {
                    "item_id": f"I{len(items) + 1:04d}",
                    "l1": l1,
                    "l2": l2,
                    "l3": l3,
                    "category": _path(l1, l2, l3),
                    "title": title,
                    "weight": 1.0 / float(ranks[k]) ** 0.8,
                    "is_book": "book_nouns" in leaf,
                }
            )
    return items


class _ItemPicker:
    """Draws distinct items for one user, by popularity, falling back to nearby leaves."""

    def __init__(self, rng: np.random.Generator, items: list[dict[str, Any]]) -> None:
        self._rng = rng
        self._by_leaf: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for item in items:
            self._by_leaf.setdefault((item["l1"], item["l2"], item["l3"]), []).append(item)
        self.used: set[str] = set()

    def available(self, leaf: tuple[str, str, str]) -> int:
        return sum(1 for it in self._by_leaf[leaf] if it["item_id"] not in self.used)

    def take(self, leaves: list[tuple[str, str, str]], k: int) -> list[dict[str, Any]]:
        """Take k unused items, from the first leaf first, then the next ones in order."""
        chosen: list[dict[str, Any]] = []
        for leaf in leaves:
            if len(chosen) == k:
                break
            pool = [it for it in self._by_leaf[leaf] if it["item_id"] not in self.used]
            n = min(k - len(chosen), len(pool))
            if n == 0:
                continue
            weights = np.array([it["weight"] for it in pool])
            idx = self._rng.choice(len(pool), size=n, replace=False, p=weights / weights.sum())
            for i in idx:
                chosen.append(pool[int(i)])
                self.used.add(pool[int(i)]["item_id"])
        if len(chosen) < k:  # pragma: no cover - the catalog is large enough
            raise RuntimeError(f"ran out of items in {leaves}")
        return chosen


def _polarity(rating: int) -> str:
    return "pos" if rating >= 4 else "neg" if rating <= 2 else "mixed"


def _aspect_sentence(rng: np.random.Generator, leaf: dict[str, Any], polarity: str) -> str:
    """Fill a generic aspect template with one of the leaf's aspects."""
    plural = bool(rng.random() < 0.25) and bool(leaf["plural"])
    aspect = _pick(rng, leaf["plural"] if plural else leaf["aspects"])
    sentence = _pick(rng, _ASPECT_TEMPLATES[polarity]).format(
        a=aspect,
        adj=_pick(rng, _POS_ADJECTIVES),
        nadj=_pick(rng, _NEG_ADJECTIVES),
        **({"is": "are", "it": "they"} if plural else {"is": "is", "it": "it"}),
    )
    return sentence[0].upper() + sentence[1:]


def _feature_polarities(rng: np.random.Generator, rating: int) -> list[str]:
    """Polarities of the 1-3 feature sentences of a review with this rating."""
    n = int(rng.integers(1, 4))
    if rating == 3:
        options = [["mixed"], ["pos", "neg"], ["neg", "pos"], ["mixed", "neg"], ["pos", "mixed"]]
        return list(_pick(rng, options))
    main = _polarity(rating)
    out = [main] * n
    if rating in (2, 4) and n >= 2 and rng.random() < 0.3:
        out[-1] = "mixed"
    return out


def _compose_text(rng: np.random.Generator, item: dict[str, Any], rating: int) -> str:
    """Compose a 2-5 sentence review of an item that matches its leaf and rating."""
    branch = _TREE[item["l1"]][item["l2"]]
    leaf = branch["leaves"][item["l3"]]
    polarity = _polarity(rating)
    sentences: list[str] = []

    mention_title = rng.random() < _TITLE_MENTION_PROB
    if mention_title:
        title = item["title"] if item["is_book"] else f"the {item['title']}"
        openers = _TITLE_OPENERS_BOOK if item["is_book"] else _TITLE_OPENERS_PRODUCT
        when = _pick(rng, _WHEN_BOOK if item["is_book"] else _WHEN_PRODUCT)
        sentence = _pick(rng, openers).format(t=title, when=when)
        sentences.append(sentence[0].upper() + sentence[1:])
    if not mention_title or rng.random() < 0.5:
        sentences.append(_pick(rng, _OPENINGS[rating]))

    used: set[str] = set()
    for feature_polarity in _feature_polarities(rng, rating):
        for _ in range(10):
            if feature_polarity in leaf and rng.random() < 0.6:
                sentence = _pick(rng, leaf[feature_polarity])
            else:
                sentence = _aspect_sentence(rng, leaf, feature_polarity)
            if sentence not in used:
                break
        used.add(sentence)
        sentences.append(sentence)

    if rng.random() < 0.4:
        branch_polarity = polarity if polarity != "mixed" else _pick(rng, ("pos", "neg"))
        sentences.append(_pick(rng, branch[branch_polarity]))
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _CLOSINGS[polarity]))

    if len(sentences) > 5:
        sentences = sentences[:4] + sentences[-1:]
    if len(sentences) >= 3 and rng.random() < _NEWLINE_PROB:
        cut = int(rng.integers(1, len(sentences)))
        return " ".join(sentences[:cut]) + "\n" + " ".join(sentences[cut:])
    return " ".join(sentences)


def _timestamps(rng: np.random.Generator, n: int) -> list[int]:
    """n strictly increasing unix timestamps inside the demo window."""
    total = _T_END - _T_START
    span = int(total * rng.uniform(0.25, 1.0))
    start = _T_START + int(rng.uniform(0.0, 1.0) * (total - span))
    offsets = np.sort(rng.choice(span + 1, size=n, replace=False))  # distinct seconds
    return [start + int(x) for x in offsets]


def _plan_user(
    rng: np.random.Generator,
    picker: _ItemPicker,
    fav: tuple[str, str, str],
    disliked_l1: str | None,
    n_reviews: int,
) -> tuple[list[tuple[dict[str, Any], str]], str | None]:
    """Choose the (item, role) pairs of one non-cold user.

    Returns the pairs and the disliked L1 actually used (None if no room was left).
    """
    fav_l1, fav_l2, fav_l3 = fav
    n_fav = min(n_reviews, max(math.ceil(rng.uniform(0.60, 0.75) * n_reviews), n_reviews // 2 + 1))
    n_rest = n_reviews - n_fav
    n_dis = 0
    if disliked_l1 is not None:
        n_dis = min(int(rng.integers(1, 4)), n_rest)
        if n_dis == 0:
            disliked_l1 = None
    n_noise = n_rest - n_dis

    # Favourite L2 holds most of the favourite-L1 reviews; favourite L3 most of those.
    fav_leaf = (fav_l1, fav_l2, fav_l3)
    sibling_leaves = [
        (fav_l1, fav_l2, l3) for l3 in _TREE[fav_l1][fav_l2]["leaves"] if l3 != fav_l3
    ]
    n_l2 = math.ceil(rng.uniform(0.60, 0.80) * n_fav)
    n_l3 = min(math.ceil(rng.uniform(0.55, 0.75) * n_l2), picker.available(fav_leaf))
    n_sib = min(n_l2 - n_l3, max(n_l3 - 1, 0), sum(picker.available(s) for s in sibling_leaves))
    n_other_l2 = n_fav - n_l3 - n_sib

    plan: list[tuple[dict[str, Any], str]] = []
    plan += [(it, "favourite") for it in picker.take([fav_leaf], n_l3)]
    plan += [(it, "favourite") for it in picker.take(sibling_leaves, n_sib)]
    other_l2_leaves = [leaf for leaf in _leaf_paths() if leaf[0] == fav_l1 and leaf[1] != fav_l2]
    for _ in range(n_other_l2):
        leaf = _pick(rng, other_l2_leaves)
        rest = [lf for lf in other_l2_leaves if lf != leaf]
        plan += [(it, "favourite_l1_other") for it in picker.take([leaf, *rest], 1)]

    if disliked_l1 is not None:
        dis_leaves = [leaf for leaf in _leaf_paths() if leaf[0] == disliked_l1]
        for _ in range(n_dis):
            leaf = _pick(rng, dis_leaves)
            rest = [lf for lf in dis_leaves if lf != leaf]
            plan += [(it, "disliked") for it in picker.take([leaf, *rest], 1)]

    noise_leaves = [leaf for leaf in _leaf_paths() if leaf[0] not in (fav_l1, disliked_l1)]
    for _ in range(n_noise):
        leaf = _pick(rng, noise_leaves)
        rest = [lf for lf in noise_leaves if lf[0] == leaf[0] and lf != leaf]
        plan += [(it, "noise") for it in picker.take([leaf, *rest], 1)]
    return plan, disliked_l1


def _ratings_for(rng: np.random.Generator, roles: list[str]) -> list[int]:
    """Draw a rating per role, then lift favourite-L1 ratings until their mean is >= 4."""
    specs = {
        "favourite": _RATINGS_FAVOURITE,
        "favourite_l1_other": _RATINGS_FAVOURITE_L1_OTHER,
        "cold": _RATINGS_COLD,
        "disliked": _RATINGS_DISLIKED,
        "noise": _RATINGS_NOISE,
    }
    ratings = [_draw_rating(rng, specs[role]) for role in roles]
    fav_idx = [i for i, role in enumerate(roles) if role in ("favourite", "favourite_l1_other")]
    while fav_idx and sum(ratings[i] for i in fav_idx) < 4 * len(fav_idx):
        lowest = min(fav_idx, key=lambda i: (ratings[i], i))
        ratings[lowest] += 1
    return ratings


def generate_demo_reviews(seed: int = 7, n_users: int = 300) -> tuple[list[dict], dict]:
    """Generate the demo reviews and the interests planted in them.

    Args:
        seed: Seed of the ``numpy.random.default_rng`` that drives every choice.
        n_users: Number of users (ids ``U0001``...). At least 1.

    Returns:
        ``(rows, planted)``. ``rows`` is a list of dicts with the keys of
        ``CSV_COLUMNS`` (``rating`` and ``timestamp`` are ints), sorted by
        ``(user_id, timestamp)``. ``planted`` is a JSON-ready dict with ``seed``,
        ``n_users``, ``users`` (per user: ``favourite_l1``, ``favourite_l2``,
        ``favourite_l3`` as full paths, ``disliked_l1`` or None, ``cold``) and
        ``categories`` (every L3 path).

    Raises:
        ValueError: If ``n_users`` is below 1.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}; pass a positive user count.")
    rng = np.random.default_rng(seed)
    items = _build_catalog(rng)
    leaves = _leaf_paths()
    l1s = list(_TREE)

    # Favourite L1s spread evenly over the categories, in random user order.
    fav_l1s = [l1s[i % len(l1s)] for i in range(n_users)]
    fav_l1s = [fav_l1s[int(i)] for i in rng.permutation(n_users)]
    n_cold = round(_COLD_SHARE * n_users)
    cold_users = {int(i) for i in rng.permutation(n_users)[:n_cold]}

    rows: list[dict[str, Any]] = []
    planted_users: dict[str, dict[str, Any]] = {}
    texts: set[str] = set()
    for u in range(n_users):
        user_id = f"U{u + 1:04d}"
        fav_l1 = fav_l1s[u]
        fav_l2 = _pick(rng, list(_TREE[fav_l1]))
        fav_l3 = _pick(rng, list(_TREE[fav_l1][fav_l2]["leaves"]))
        picker = _ItemPicker(rng, items)
        cold = u in cold_users
        if cold:
            plan = [(it, "cold") for it in picker.take([(fav_l1, fav_l2, fav_l3)], 1)]
            disliked_l1 = None
        else:
            disliked_l1 = None
            if rng.random() < 0.5:
                disliked_l1 = _pick(rng, [l1 for l1 in l1s if l1 != fav_l1])
            n_reviews = int(rng.integers(_MIN_REVIEWS, _MAX_REVIEWS + 1))
            plan, disliked_l1 = _plan_user(
                rng, picker, (fav_l1, fav_l2, fav_l3), disliked_l1, n_reviews
            )
        ratings = _ratings_for(rng, [role for _, role in plan])
        order = rng.permutation(len(plan))  # interests interleave over time
        times = _timestamps(rng, len(plan))
        for t, j in zip(times, order, strict=True):
            item, _role = plan[int(j)]
            rating = ratings[int(j)]
            text = _compose_text(rng, item, rating)
            for _ in range(20):
                if text not in texts:
                    break
                text = _compose_text(rng, item, rating)
            texts.add(text)
            rows.append(
                {
                    "user_id": user_id,
                    "item_id": item["item_id"],
                    "text": text,
                    "rating": rating,
                    "timestamp": t,
                    "category": item["category"],
                    "item_title": item["title"],
                }
            )
        planted_users[user_id] = {
            "favourite_l1": fav_l1,
            "favourite_l2": _path(fav_l1, fav_l2),
            "favourite_l3": _path(fav_l1, fav_l2, fav_l3),
            "disliked_l1": disliked_l1,
            "cold": cold,
        }

    rows.sort(key=lambda r: (r["user_id"], r["timestamp"], r["item_id"]))
    planted = {
        "seed": seed,
        "n_users": n_users,
        "users": planted_users,
        "categories": [_path(*leaf) for leaf in leaves],
    }
    logger.info(
        "generated %d demo reviews: %d users (%d cold), %d items reviewed",
        len(rows),
        n_users,
        n_cold,
        len({r["item_id"] for r in rows}),
    )
    return rows, planted


def write_demo_dataset(out_dir: Path, seed: int = 7, n_users: int = 300) -> tuple[Path, Path]:
    """Generate the demo dataset and write ``reviews.csv`` and ``planted.json``.

    Args:
        out_dir: Folder to write into; created if missing.
        seed: Seed passed to :func:`generate_demo_reviews`.
        n_users: Number of users passed to :func:`generate_demo_reviews`.

    Returns:
        ``(csv_path, planted_path)``.
    """
    rows, planted = generate_demo_reviews(seed=seed, n_users=n_users)
    return _write(Path(out_dir), rows, planted)


def _write(out_dir: Path, rows: list[dict], planted: dict) -> tuple[Path, Path]:
    """Write rows as ``reviews.csv`` and planted truth as ``planted.json`` into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "reviews.csv"
    planted_path = out_dir / "planted.json"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=list(CSV_COLUMNS), quoting=csv.QUOTE_MINIMAL, lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
    planted_path.write_text(
        json.dumps(planted, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    logger.info("wrote %s and %s", csv_path, planted_path)
    return csv_path, planted_path


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: ``python tools/make_demo.py OUT_DIR``."""
    parser = argparse.ArgumentParser(description="Write the MGI demo review dataset.")
    parser.add_argument("out_dir", type=Path, help="folder for reviews.csv and planted.json")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--n-users", type=int, default=300, help="number of users (default 300)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows, planted = generate_demo_reviews(seed=args.seed, n_users=args.n_users)
    csv_path, planted_path = _write(args.out_dir, rows, planted)
    per_l1 = Counter(r["category"].split(CATEGORY_SEPARATOR)[0] for r in rows)
    n_cold = sum(1 for u in planted["users"].values() if u["cold"])
    print(f"wrote {csv_path} and {planted_path}")
    print(
        f"{len(rows)} reviews, {len(planted['users'])} users ({n_cold} cold), "
        f"{len({r['item_id'] for r in rows})} items"
    )
    for l1, count in sorted(per_l1.items()):
        print(f"  {l1}: {count}")


if __name__ == "__main__":
    main()
