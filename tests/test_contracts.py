"""One reader per file format (rarft.contracts): a bad row in each names the file, the row (1-based) and the key."""

from __future__ import annotations

import json
import re

import pytest

from rarft import contracts
from rarft.io import DataError, write_json, write_jsonl

ITEM = {"id": "q1", "problem": "What is 1 + 1?", "answer": "2", "trace": "Step 1: add.", "problem_type": "total",
        "source": "world", "strategy": "total"}
LABEL = {"query_id": "q1", "context_id": "c1", "label": 1, "score": 0.5, "stderr": 0.1, "labeler": "gain"}
RETRIEVAL = {"id": "q1", "split": "train", "contexts": [{"id": "c1", "score": 0.9}]}
SAMPLE = {"benchmark": "b", "problem_id": "p1", "context_id": None, "context_rank": 0, "sample": 0,
          "completion": "x", "extracted": "2", "reward": 1.0}
CURVE = {"step": 0, "benchmark": "b", "average_at_k": 0.5, "k": 4}
CANDIDATES = {"query_id": "q1", "candidates": ["c1", "c2"]}

# (reader, a good row, the key spoiled in row 2, the spoiled value; None = key removed)
BAD_ROWS = [
    (contracts.read_items, ITEM, "answer", 3),
    (contracts.read_items, ITEM, "problem", None),
    (contracts.read_items, ITEM, "problem", "   "),
    (contracts.read_items, ITEM, "trace", 7),
    (contracts.read_candidates, CANDIDATES, "candidates", "c1"),
    (contracts.read_candidates, CANDIDATES, "query_id", None),
    (contracts.read_labels, LABEL, "label", 2),
    (contracts.read_labels, LABEL, "label", True),
    (contracts.read_labels, LABEL, "score", "high"),
    (contracts.read_labels, LABEL, "labeler", "judge"),
    (contracts.read_retrieval, RETRIEVAL, "contexts", None),
    (contracts.read_retrieval, RETRIEVAL, "contexts", [{"score": 1.0}]),
    (contracts.read_samples, SAMPLE, "reward", None),
    (contracts.read_samples, SAMPLE, "problem_id", 5),
    (contracts.read_curve, CURVE, "average_at_k", "0.5"),
]


@pytest.mark.parametrize("reader, good, key, value", BAD_ROWS,
                         ids=[f"{r.__name__}-{k}-{v!r}" for r, _, k, v in BAD_ROWS])
def test_a_bad_row_names_file_row_and_key(tmp_path, reader, good, key, value):
    path = tmp_path / "f.jsonl"
    bad = {k: v for k, v in good.items() if k != key}
    if value is not None:
        bad[key] = value
    write_jsonl(path, [good, bad])
    with pytest.raises(DataError) as e:
        reader(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}, row 2: key '{key}"), msg


@pytest.mark.parametrize("reader, good", [(contracts.read_items, ITEM), (contracts.read_candidates, CANDIDATES),
                                          (contracts.read_labels, LABEL), (contracts.read_retrieval, RETRIEVAL),
                                          (contracts.read_samples, SAMPLE), (contracts.read_curve, CURVE)])
def test_good_rows_pass(tmp_path, reader, good):
    path = tmp_path / "f.jsonl"
    write_jsonl(path, [good, good if reader is not contracts.read_items else dict(good, id="q2")])
    assert len(reader(path)) == 2


def test_rows_are_counted_without_blank_lines(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(SAMPLE) + "\n\n" + json.dumps(dict(SAMPLE, reward="one")) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}, row 2: key 'reward' must be int or float")):
        contracts.read_samples(path)


def test_items_need_and_unique_ids(tmp_path):
    path = tmp_path / "items.jsonl"
    write_jsonl(path, [ITEM, dict(ITEM, id="q2", trace=None)])
    assert len(contracts.read_items(path)) == 2  # trace: str or null, needed only when asked
    with pytest.raises(DataError, match=r"row 2: key 'trace' is missing"):
        contracts.read_items(path, need=("trace",))
    write_jsonl(path, [ITEM, ITEM])
    with pytest.raises(DataError, match=r"row 2: key 'id' is a duplicate: 'q1' is also row 1"):
        contracts.read_items(path)


def test_candidates_ids_are_checked_against_the_splits(tmp_path):
    path = tmp_path / "cand.jsonl"
    write_jsonl(path, [CANDIDATES])
    assert contracts.read_candidates(path, {"q1": ITEM}, {"c1": {}, "c2": {}})
    with pytest.raises(DataError, match=r"row 1: key 'candidates' names 'c2', which is not in the corpus"):
        contracts.read_candidates(path, {"q1": ITEM}, {"c1": {}})
    with pytest.raises(DataError, match=r"row 1: key 'query_id' names 'q1', which is not in the training"):
        contracts.read_candidates(path, {}, {"c1": {}, "c2": {}})


def test_summary_names_file_and_key(tmp_path):
    path = tmp_path / "summary.json"
    good = {"policy": "grpo", "setting": "none", "k": 4, "per_problem": {},
            "benchmarks": {"b": {"average_at_k": 0.5, "ci_low": 0.4, "ci_high": 0.6}}}
    write_json(path, good)
    assert contracts.read_summary(path)["k"] == 4
    write_json(path, {k: v for k, v in good.items() if k != "per_problem"})
    with pytest.raises(DataError, match=re.escape(f"{path}: key 'per_problem' is missing")):
        contracts.read_summary(path)
    write_json(path, dict(good, benchmarks={"b": {"average_at_k": 50, "ci_low": 0.4, "ci_high": 0.6}}))
    with pytest.raises(DataError, match=re.escape(f"{path}: key 'benchmarks.b.average_at_k' must be a fraction")):
        contracts.read_summary(path)
    write_json(path, dict(good, k="4"))
    with pytest.raises(DataError, match=re.escape(f"{path}: key 'k' must be int")):
        contracts.read_summary(path)


def test_stages_read_through_the_contracts(tmp_path):
    """The stages' loaders are the contract readers: the same bad row gives the same error through them."""
    from rarft.retrieval import load_items
    from rarft.tables import per_problem_from_samples
    from rarft.train import load_retrieval

    items = tmp_path / "items.jsonl"
    write_jsonl(items, [ITEM, dict(ITEM, id="q2", problem="")])
    with pytest.raises(DataError, match=r"items.jsonl, row 2: key 'problem' is empty"):
        load_items(items)
    retrieval = tmp_path / "r.jsonl"
    write_jsonl(retrieval, [RETRIEVAL, dict(RETRIEVAL, contexts="c1")])
    with pytest.raises(DataError, match=r"r.jsonl, row 2: key 'contexts' must be list"):
        load_retrieval(retrieval)
    samples = tmp_path / "samples.jsonl"
    write_jsonl(samples, [SAMPLE, dict(SAMPLE, reward=None)])
    with pytest.raises(DataError, match=r"samples.jsonl, row 2: key 'reward' is missing"):
        per_problem_from_samples(samples)


def test_items_in_memory_follow_the_same_rule():
    """check_items: the rule for lists a stage already holds (policy's and evaluate's loaders can use it)."""
    rows = [ITEM, dict(ITEM, id="q2", strategy=None)]
    assert contracts.check_items(rows, "corpus") is rows
    with pytest.raises(DataError, match=r"^corpus, row 2: key 'strategy' is missing$"):
        contracts.check_items(rows, "corpus", need=("trace", "strategy"))


def test_the_world_named_rule_flag_is_a_bool(tmp_path):
    from rarft.contracts import read_items
    from rarft.io import DataError, write_jsonl

    good = {"id": "a", "problem": "p", "answer": "1", "named_rule": True}
    write_jsonl(tmp_path / "ok.jsonl", [good])
    assert read_items(tmp_path / "ok.jsonl")[0]["named_rule"] is True
    write_jsonl(tmp_path / "bad.jsonl", [{**good, "named_rule": 1}])
    with pytest.raises(DataError, match="row 1: key 'named_rule'"):
        read_items(tmp_path / "bad.jsonl")
