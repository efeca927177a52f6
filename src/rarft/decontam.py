"""decontaminate: remove training queries and corpus items that overlap a benchmark, and corpus items
that overlap a training query, by word n-grams (open-r1's recipe: 8-grams) after normalisation.

Normalisation makes a lightly reformatted copy look identical: case, whitespace, `$` signs, LaTeX
spacing (\\, \\; \\! \\quad ...), \\left/\\right, \\dfrac/\\tfrac -> \\frac, instruction suffixes. Tokens are
runs of letters/digits and single symbols, so `x^2+1` and `x^2 + 1` give the same n-grams.

An item matches another when they share n-grams covering at least `min_overlap` of the shorter one's
distinct n-grams (0: any shared n-gram, the open-r1 rule). Benchmarks are never changed: the train or
corpus item is removed and listed. After filtering, every benchmark item is checked again against what
is left; any overlap raises, so a run with benchmark items left in train or corpus cannot happen.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

from rarft.config import add_config_argument, load_config
from rarft.data import strip_instructions
from rarft.io import DataError, read_json, read_jsonl, write_json, write_jsonl, write_text

_LATEX_DROP = re.compile(r"\\(?:left|right|bigl|bigr|biggl|biggr|big|bigg|Big|Bigg|displaystyle|textstyle)(?![a-zA-Z])")
_LATEX_SPACE = re.compile(r"\\(?:,|;|!|:|>| |quad(?![a-zA-Z])|qquad(?![a-zA-Z]))|~|\\\(|\\\)|\\\[|\\\]|\$")
_TOKEN = re.compile(r"[a-z0-9]+")  # words and numbers; LaTeX commands become their names


class ContaminationError(DataError):
    """A benchmark item still overlaps the training queries or corpus after filtering."""


def tokens(text: str) -> list[str]:
    """Normalised tokens of a problem text (see module docstring)."""
    text = strip_instructions(text)
    text = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", text)
    text = _LATEX_DROP.sub(" ", text)
    text = _LATEX_SPACE.sub(" ", text)
    return _TOKEN.findall(text.lower())


def ngram_set(text: str, n: int) -> frozenset:
    """Distinct n-grams of a text; a text shorter than n tokens is one 'n-gram' of all its tokens."""
    toks = tokens(text)
    if len(toks) < n:
        return frozenset([tuple(toks)]) if toks else frozenset()
    return frozenset(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


class NgramIndex:
    """Inverted index n-gram -> reference items, for finding the best-overlapping reference of a query."""

    def __init__(self, items: list[dict], n: int, split_of: dict[str, str] | None = None):
        self.n = n
        self.ids = [it["id"] for it in items]
        self.split_of = split_of or {}
        self.sizes = []
        self.postings: dict[tuple, list[int]] = defaultdict(list)
        for k, it in enumerate(items):
            grams = ngram_set(it["problem"], n)
            self.sizes.append(len(grams))
            for g in grams:
                self.postings[g].append(k)

    def best_match(self, grams: frozenset, min_overlap: float) -> dict | None:
        """The reference item sharing the largest fraction of n-grams with ``grams``, if >= min_overlap.

        The fraction is shared / min(len(query), len(reference)): a short benchmark problem embedded in a
        longer corpus text (or the reverse) counts as fully contained.
        """
        if not grams:
            return None
        shared: dict[int, int] = defaultdict(int)
        example: dict[int, tuple] = {}
        for g in grams:
            for k in self.postings.get(g, ()):
                shared[k] += 1
                example.setdefault(k, g)
        best = None
        for k, count in shared.items():
            overlap = count / min(len(grams), self.sizes[k])
            if overlap >= min_overlap and overlap > 0 and (best is None or overlap > best["overlap"]):
                best = {"matched": self.ids[k], "matched_split": self.split_of.get(self.ids[k]),
                        "overlap": round(overlap, 4), "shared_ngrams": count,
                        "example_ngram": " ".join(example[k])}
        return best


def decontaminate(train: list[dict], corpus: list[dict], benchmarks: dict[str, list[dict]], *, ngram: int,
                  min_overlap: float, train_corpus_min_overlap: float | None = None
                  ) -> tuple[list[dict], list[dict], list[dict]]:
    """Return (clean train, clean corpus, removed rows). Raises ContaminationError if the re-check fails.

    ``train_corpus_min_overlap`` (default: ``min_overlap``) is the rule for corpus items against training
    queries; a corpus of real size shares boilerplate 8-grams ("where m and n are relatively prime
    positive integers") with many queries, which the any-n-gram rule would all remove.
    """
    if train_corpus_min_overlap is None:
        train_corpus_min_overlap = min_overlap
    from tqdm import tqdm

    bench_items = [it for items in benchmarks.values() for it in items]
    split_of = {it["id"]: name for name, items in benchmarks.items() for it in items}
    bench_index = NgramIndex(bench_items, ngram, split_of)
    removed: list[dict] = []
    quiet = len(train) + len(corpus) < 5000

    def check(items: list[dict], split: str, index: NgramIndex, reason: str, threshold: float) -> list[dict]:
        kept = []
        for it in tqdm(items, desc=f"decontaminate {split} vs {reason}", leave=False, disable=quiet):
            hit = index.best_match(ngram_set(it["problem"], ngram), threshold)
            if hit is None:
                kept.append(it)
            else:
                removed.append({"id": it["id"], "split": split, "against": reason, **hit})
        return kept

    train_clean = check(train, "train", bench_index, "benchmarks", min_overlap)
    corpus_clean = check(corpus, "corpus", bench_index, "benchmarks", min_overlap)
    train_index = NgramIndex(train_clean, ngram, {it["id"]: "train" for it in train_clean})
    corpus_clean = check(corpus_clean, "corpus", train_index, "train", train_corpus_min_overlap)
    recheck(train_clean, corpus_clean, benchmarks, ngram=ngram, min_overlap=min_overlap)
    return train_clean, corpus_clean, removed


def recheck(train: list[dict], corpus: list[dict], benchmarks: dict[str, list[dict]], *, ngram: int,
            min_overlap: float) -> None:
    """Raise ContaminationError if any benchmark item overlaps what is left of train or corpus."""
    left = train + corpus
    split_of = {it["id"]: "train" for it in train} | {it["id"]: "corpus" for it in corpus}
    index = NgramIndex(left, ngram, split_of)
    leaks = []
    for name, items in benchmarks.items():
        for it in items:
            hit = index.best_match(ngram_set(it["problem"], ngram), min_overlap)
            if hit is not None:
                leaks.append(f"{name}/{it['id']} ~ {hit['matched_split']}/{hit['matched']} (overlap {hit['overlap']})")
    if leaks:
        raise ContaminationError(f"decontaminate: {len(leaks)} benchmark item(s) still overlap train/corpus "
                                 f"after filtering: {'; '.join(leaks[:10])}")


def summary(train, corpus, benchmarks, train_clean, corpus_clean, removed, ngram, min_overlap,
            train_corpus_min_overlap) -> dict:
    counts = {"train": {"before": len(train), "removed": len(train) - len(train_clean), "after": len(train_clean)},
              "corpus": {"before": len(corpus), "removed": len(corpus) - len(corpus_clean),
                         "after": len(corpus_clean)}}
    by_reason: dict[str, int] = defaultdict(int)
    for r in removed:
        by_reason[f"{r['split']} vs {r['against']}"] += 1
    return {"ngram": ngram, "min_overlap": min_overlap, "train_corpus_min_overlap": train_corpus_min_overlap,
            "counts": counts,
            "benchmarks": {name: len(items) for name, items in benchmarks.items()},
            "removed_by_reason": dict(by_reason), "recheck": "passed: no benchmark item overlaps train or corpus",
            "removed": removed}


def _rule(threshold: float) -> str:
    if threshold == 0:
        return "any shared n-gram (open-r1)"
    return f"shared n-grams >= {threshold:.0%} of the shorter item's"


def report_markdown(rep: dict, max_rows: int = 200) -> str:
    lines = ["# Decontamination report", "",
             f"{rep['ngram']}-gram overlap after normalisation. Match rule against benchmarks: "
             f"{_rule(rep['min_overlap'])}; corpus against training queries: {_rule(rep['train_corpus_min_overlap'])}.",
             f"Benchmarks: {', '.join(f'{k} ({v})' for k, v in rep['benchmarks'].items())}.", "",
             "| split | before | removed | after |", "|---|---|---|---|"]
    for split, c in rep["counts"].items():
        lines.append(f"| {split} | {c['before']} | {c['removed']} | {c['after']} |")
    lines += ["", "Removed by reason: " + (", ".join(f"{k}: {v}" for k, v in rep["removed_by_reason"].items())
                                           or "none"), "", f"Re-check: {rep['recheck']}.", ""]
    if rep["removed"]:
        lines += ["| removed id | split | matched | overlap | shared n-grams | example n-gram |",
                  "|---|---|---|---|---|---|"]
        for r in rep["removed"][:max_rows]:
            ex = r["example_ngram"].replace("|", "\\|")
            lines.append(f"| {r['id']} | {r['split']} | {r['matched_split']}/{r['matched']} | {r['overlap']} "
                         f"| {r['shared_ngrams']} | `{ex}` |")
        if len(rep["removed"]) > max_rows:
            lines.append(f"\n... and {len(rep['removed']) - max_rows} more (all of them in the JSON report).")
    return "\n".join(lines) + "\n"


def benchmark_names(in_dir: Path) -> list[str]:
    report = in_dir / "report.json"
    if report.exists():
        return list(read_json(report)["benchmarks"])
    names = sorted(p.stem for p in (in_dir / "bench").glob("*.jsonl"))
    if not names:
        raise DataError(f"{in_dir / 'bench'}: no benchmark files (*.jsonl)")
    return names


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft decontaminate", description=__doc__.split("\n")[0])
    add_config_argument(p)
    p.add_argument("--in-dir", default="data/prepared", help="prepare-data's output folder")
    p.add_argument("--out-dir", default="data/clean", help="where the filtered splits go")
    p.add_argument("--report", default=None,
                   help="report path without suffix: writes <report>.json and <report>.md "
                        "(default: <out-dir>/decontamination)")
    args = p.parse_args(argv)
    if args.report is None:
        args.report = str(Path(args.out_dir) / "decontamination")
    config = load_config(args.config)
    dc = config["data"]["decontamination"]
    ngram, min_overlap, tc = int(dc["ngram"]), float(dc["min_overlap"]), dc["train_corpus_min_overlap"]
    tc = min_overlap if tc is None else float(tc)
    in_dir, out_dir = Path(args.in_dir), Path(args.out_dir)
    train, corpus = read_jsonl(in_dir / "train.jsonl"), read_jsonl(in_dir / "corpus.jsonl")
    benchmarks = {name: read_jsonl(in_dir / "bench" / f"{name}.jsonl") for name in benchmark_names(in_dir)}
    train_clean, corpus_clean, removed = decontaminate(train, corpus, benchmarks, ngram=ngram,
                                                       min_overlap=min_overlap, train_corpus_min_overlap=tc)
    rep = summary(train, corpus, benchmarks, train_clean, corpus_clean, removed, ngram, min_overlap, tc)
    write_jsonl(out_dir / "train.jsonl", train_clean)
    write_jsonl(out_dir / "corpus.jsonl", corpus_clean)
    for name, items in benchmarks.items():
        write_jsonl(out_dir / "bench" / f"{name}.jsonl", items)
    write_json(f"{args.report}.json", rep)
    write_text(f"{args.report}.md", report_markdown(rep))
    print(f"decontaminate: removed {rep['counts']['train']['removed']} train and {rep['counts']['corpus']['removed']} "
          f"corpus items ({ngram}-grams, min_overlap {min_overlap}); re-check passed -> {out_dir}")
    return 0
