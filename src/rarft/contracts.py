"""One reader per file format between the stages (docs/architecture.md's tables, one to one).

Every reader applies the same rule to a row: each needed key is present and of its contract type, and a needed
string is not empty after stripping. A nullable field (`trace: str or null`) is checked only for its type unless a
caller needs it. A bad row raises `rarft.io.DataError` naming the file, the row (1-based, blank lines not counted)
and the key: `data/clean/train.jsonl, row 3: key 'answer' is missing`.

    read_items(path, need=("trace",))   item files: data/*/{train,corpus}.jsonl, data/*/bench/<name>.jsonl
    read_candidates(path)               data/labels/candidates.jsonl
    read_labels(path)                   data/labels/<labeler>.jsonl
    read_retrieval(path)                data/retrieval/<R>.jsonl
    read_samples(path) / iter_samples   runs/eval/<P>/<S>/samples.jsonl
    read_summary(path)                  runs/eval/<P>/<S>/summary.json
    read_curve(path)                    runs/train/<arm>/curve.jsonl

check_items / check_candidates apply the same rule to rows a stage already holds in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TypedDict

from rarft.io import DataError, iter_jsonl, read_json, read_jsonl

NUMBER = (int, float)
NONE = type(None)


class Item(TypedDict, total=False):
    """A row of every item file (train, corpus, benchmarks), whatever the source."""

    id: str
    problem: str
    answer: str
    trace: str | None
    solution: str | None
    problem_type: str
    source: str
    strategy: str | None
    story: str
    difficulty: str
    named_rule: bool
    rule: str  # world only: the rule name the item's question or trace uses



# field -> the types its value may have (docs/architecture.md, "Item schema")
ITEM = {"id": str, "problem": str, "answer": str, "trace": (str, NONE), "solution": (str, NONE),
        "problem_type": str, "source": str, "strategy": (str, NONE), "story": str, "difficulty": str,
        "named_rule": bool, "rule": str}
ITEM_NEED = ("id", "problem")
CANDIDATES = {"query_id": str, "candidates": list}
LABEL = {"query_id": str, "context_id": str, "label": (int, NONE), "score": (*NUMBER, NONE),
         "stderr": (*NUMBER, NONE), "labeler": str}
RETRIEVAL = {"id": str, "split": str, "contexts": list}
CONTEXT = {"id": str, "score": NUMBER}
SAMPLE = {"benchmark": str, "problem_id": str, "context_id": (str, NONE), "context_rank": (int, NONE),
          "sample": int, "completion": str, "extracted": (str, NONE), "reward": NUMBER}
SAMPLE_NEED = ("benchmark", "problem_id", "reward")
SUMMARY = {"policy": str, "setting": str, "k": int, "benchmarks": dict, "per_problem": dict}
SUMMARY_NEED = ("k", "benchmarks", "per_problem")
SUMMARY_FRACTIONS = ("average_at_k", "ci_low", "ci_high")
# per_problem: problem id -> mean reward over its k samples (Figure 3's band); absent in older curve files
CURVE = {"step": int, "benchmark": str, "average_at_k": NUMBER, "k": (int, NONE), "per_problem": dict}
CURVE_NEED = ("step", "benchmark", "average_at_k")


def row_error(path: str | os.PathLike, row: int | None, key: str, problem: str) -> DataError:
    """The one wording of a contract error: file, row (1-based; None for a single-object file), key."""
    where = f"{path}, row {row}" if row is not None else f"{path}"
    return DataError(f"{where}: key {key!r} {problem}")


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is NONE else t.__name__ for t in types)


def check_row(row: dict, fields: dict, need, path, i: int | None, prefix: str = "") -> dict:
    """The rule for a valid row: needed keys present, non-empty if strings; every known key of its type."""
    for key in need:
        if key not in row or row[key] is None:
            raise row_error(path, i, prefix + key, "is missing")
        if isinstance(row[key], str) and not row[key].strip():
            raise row_error(path, i, prefix + key, "is empty")
    for key, types in fields.items():
        if key not in row:
            continue
        value = row[key]
        types_t = types if isinstance(types, tuple) else (types,)
        # a bool is an int to Python, never a count or a score here (labels are 0/1, not true/false)
        if (isinstance(value, bool) and bool not in types_t) or not isinstance(value, types_t):
            raise row_error(path, i, prefix + key, f"must be {_type_names(types)}, got {value!r:.60}")
    return row


def read_rows(path: str | os.PathLike, fields: dict, need) -> list[dict]:
    return [check_row(r, fields, need, path, i) for i, r in enumerate(read_jsonl(path), 1)]


def read_items(path: str | os.PathLike, need: tuple[str, ...] = ()) -> list[Item]:
    """An item file: `id` and `problem` always needed, plus `need`; ids unique within the file."""
    return check_items(read_jsonl(path), path, need)


def check_items(rows: list[dict], path, need: tuple[str, ...] = ()) -> list[Item]:
    """read_items' rule for items already in memory (`path` names them in errors, e.g. "corpus")."""
    need = tuple(dict.fromkeys(ITEM_NEED + tuple(need)))
    seen: dict[str, int] = {}
    for i, r in enumerate(rows, 1):
        check_row(r, ITEM, need, path, i)
        if r["id"] in seen:
            raise row_error(path, i, "id", f"is a duplicate: {r['id']!r} is also row {seen[r['id']]}")
        seen[r["id"]] = i
    return rows


def read_candidates(path: str | os.PathLike, queries: dict | None = None, corpus: dict | None = None) -> list[dict]:
    """candidates.jsonl; with `queries` / `corpus` (id -> item), every id must be in them."""
    return check_candidates(read_jsonl(path), path, queries, corpus)


def check_candidates(rows: list[dict], path, queries: dict | None = None, corpus: dict | None = None) -> list[dict]:
    """read_candidates' rule for rows already in memory (`path` names them in errors)."""
    for i, r in enumerate(rows, 1):
        check_row(r, CANDIDATES, tuple(CANDIDATES), path, i)
        if queries is not None and r["query_id"] not in queries:
            raise row_error(path, i, "query_id", f"names {r['query_id']!r}, which is not in the training file")
        for cid in r["candidates"]:
            if not isinstance(cid, str) or (corpus is not None and cid not in corpus):
                raise row_error(path, i, "candidates", f"names {cid!r}, which is not in the corpus file")
    return rows


def read_labels(path: str | os.PathLike) -> list[dict]:
    """<labeler>.jsonl: one (query, context) pair per row, label 1 | 0 | null, all rows of one labeler."""
    rows = read_rows(path, LABEL, ("query_id", "context_id", "labeler"))
    for i, r in enumerate(rows, 1):
        if "label" not in r:
            raise row_error(path, i, "label", "is missing")
        if r["label"] not in (0, 1, None):
            raise row_error(path, i, "label", f"must be 1, 0 or null, got {r['label']!r}")
        if r["labeler"] != rows[0]["labeler"]:
            raise row_error(path, i, "labeler", f"is {r['labeler']!r}, but row 1's is {rows[0]['labeler']!r} "
                                                "(one labeler per file)")
    return rows


def read_retrieval(path: str | os.PathLike) -> list[dict]:
    """<R>.jsonl: per query, its split and contexts [{"id", "score"}] best first."""
    rows = read_rows(path, RETRIEVAL, tuple(RETRIEVAL))
    for i, r in enumerate(rows, 1):
        for j, c in enumerate(r["contexts"]):
            if not isinstance(c, dict):
                raise row_error(path, i, f"contexts.{j}", f"must be an object, got {c!r:.60}")
            check_row(c, CONTEXT, ("id",), path, i, prefix=f"contexts.{j}.")
    return rows


def iter_samples(path: str | os.PathLike) -> Iterator[dict]:
    """samples.jsonl, streamed (paper-scale files hold long completions), each row checked."""
    for i, (_, row) in enumerate(iter_jsonl(path), 1):
        yield check_row(row, SAMPLE, SAMPLE_NEED, path, i)


def read_samples(path: str | os.PathLike) -> list[dict]:
    return list(iter_samples(path))


def read_summary(path: str | os.PathLike) -> dict:
    """summary.json: k, benchmarks (average_at_k, ci_low, ci_high fractions in [0, 1]) and per_problem."""
    s = read_json(path)
    if not isinstance(s, dict):
        raise DataError(f"{path}: expected a JSON object")
    check_row(s, SUMMARY, SUMMARY_NEED, path, None)
    for bench, b in s["benchmarks"].items():
        for key in SUMMARY_FRACTIONS:
            v = b.get(key) if isinstance(b, dict) else None
            if isinstance(v, bool) or not isinstance(v, NUMBER) or not 0.0 <= v <= 1.0:
                raise row_error(path, None, f"benchmarks.{bench}.{key}", f"must be a fraction in [0, 1], got {v!r}")
    return s


def read_curve(path: str | os.PathLike) -> list[dict]:
    """curve.jsonl: validation average@k per (step, benchmark)."""
    return read_rows(path, CURVE, CURVE_NEED)
