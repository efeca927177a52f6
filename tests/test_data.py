"""prepare-data: schema mapping of every real source, the bad-row report, the world source, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from rarft import data
from rarft.cli import main
from rarft.config import load_config
from rarft.io import DataError, read_json, read_jsonl

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# Small files in each real source's published layout (column names and types as on the hub).
def questa_rows():  # foreverlasting1202/QuestA: problem, answer
    return [{"problem": "Find the remainder when $2^{10}$ is divided by $7$." + SUFFIX, "answer": "2"},
            {"problem": "Solve $x^2 - 5x + 6 = 0$ for the larger root.\n\n## Hint. Factor it: $(x-2)(x-3)$.",
             "answer": "3"}]


def openr1_rows():  # open-r1/OpenR1-Math-220k
    base = {"question_type": "math-word-problem", "source": "olympiads", "is_reasoning_complete": [True],
            "generations": ["<think>...</think> \\boxed{2}"], "correctness_math_verify": [True],
            "correctness_llama": None, "finish_reasons": None, "correctness_count": 1,
            "messages": [{"role": "user", "content": "q"}]}
    return [
        {**base, "problem": "Find the remainder when $2^{10}$ is divided by $7$.",
         "solution": "$2^3=1$ mod 7 ... $\\boxed{2}$",
         "answer": "2", "problem_type": "Number Theory", "uuid": "a1b2"},
        {**base, "problem": "Prove that there are infinitely many primes.", "solution": "Suppose not ...",
         "answer": "proof", "problem_type": "Number Theory", "uuid": "c3d4", "question_type": "proof"},
        {**base, "problem": "How many subsets does a $4$-element set have?",
         "solution": "Each element ... $\\boxed{16}$",
         "answer": "16", "problem_type": "Combinatorics", "uuid": "e5f6"},
    ]


def aime_rows():  # HuggingFaceH4/aime_2024, yentinglin/aime_2025
    return [{"id": 60, "problem": "Find $m+n$ where $\\frac{m}{n} = \\frac{6}{8}$ in lowest terms.",
             "solution": "It is $\\frac34$, so $\\boxed{7}$.", "answer": "7", "url": "https://aops", "year": "2024"},
            {"id": 61, "problem": "What is $\\left( 12 \\right)^2$?", "solution": "", "answer": "144",
             "url": "https://aops", "year": "2024"}]


def matharena_rows():  # MathArena/hmmt_feb_2025, MathArena/brumo_2025
    return [{"problem_idx": 1, "problem": "Compute $\\sum_{k=1}^{4} k$.", "answer": "10",
             "problem_type": ["Algebra", "Number Theory"]},
            {"problem_idx": 2, "problem": "Compute $\\dfrac{1}{2} + \\dfrac{1}{3}$.", "answer": "\\frac{5}{6}",
             "problem_type": ["Algebra"]}]


def math_rows():  # the MATH test set: the answer is boxed inside the solution
    return [{"problem": "What is $\\sqrt{49}$?", "level": "Level 1", "type": "Prealgebra",
             "solution": "We have $\\sqrt{49} = \\boxed{7}$.", "idx": 0},
            {"problem": "Evaluate $\\frac{1}{\\frac{1}{2}}$.", "level": "Level 2", "type": "Counting & Probability",
             "solution": "It is $\\boxed{\\frac{2}{1}}$, that is $\\boxed{2}$.", "idx": 1}]


SOURCES = {"questa": questa_rows, "openr1": openr1_rows, "aime": aime_rows, "matharena": matharena_rows,
           "math": math_rows}


# ------------------------------------------------------------------------------------------ helpers
def test_strip_instructions_removes_suffixes_and_hints_but_keeps_problem_text():
    assert data.strip_instructions("What is 1+1?" + SUFFIX) == "What is 1+1?"
    same_line = "What is 1+1? Let's think step by step and output the final answer within \\boxed{}."
    assert data.strip_instructions(same_line) == "What is 1+1?"
    hinted = "Solve $x+1=2$.\n\n## Hint. Subtract one."
    assert data.strip_instructions(hinted) == "Solve $x+1=2$."
    # problem statements do ask for a form of the answer: that is not an instruction suffix
    keep = "What is $1/2 + 1/3$? Express your answer as a common fraction."
    assert data.strip_instructions(keep) == keep


def test_last_boxed_balances_braces():
    text = "so $\\boxed{\\frac{1}{2}}$ and then \\boxed{\\dfrac{3}{\\sqrt{4}}}."
    assert data.last_boxed(text) == "\\dfrac{3}{\\sqrt{4}}"
    assert data.last_boxed("no box here") is None
    assert data.last_boxed("\\boxed{unclosed") is None


def test_normalise_type():
    assert data.normalise_type("Counting & Probability") == "counting_probability"
    assert data.normalise_type(["Number Theory", "Algebra"]) == "number_theory"
    assert data.normalise_type(None) == "unknown"


# ------------------------------------------------------------------------------------ schema mapping
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("schema", sorted(SOURCES))
def test_every_real_layout_maps_to_the_item_schema(tmp_path, schema, fmt):
    rows = SOURCES[schema]()
    path = (write_jsonl if fmt == "jsonl" else write_parquet)(tmp_path / f"{schema}.{fmt}", rows)
    for requested in (schema, "auto"):
        items, report = data.load_source({"path": str(path), "schema": requested}, "split", "test")
        assert report["schema"] == schema or (schema == "questa" and report["schema"] == "auto")
        assert report["rows_read"] == len(rows)
        for it in items:
            assert set(it) >= {"id", "problem", "answer", "trace", "solution", "problem_type", "source"}
            assert it["id"].startswith("split-") and it["problem"] and it["answer"]
            assert "\\boxed{}" not in it["problem"] and "## Hint" not in it["problem"]
            assert data.answer_parses(it["answer"])
        assert len({it["id"] for it in items}) == len(items)
    by_problem = {it["problem"]: it for it in items}
    if schema == "openr1":
        assert [it["id"] for it in items] == ["split-a1b2", "split-e5f6"]  # 'proof' has no final answer
        assert report["dropped"] == {"placeholder answer ('proof')": 1}
        assert {it["problem_type"] for it in items} == {"number_theory", "combinatorics"}
        assert all(it["solution"] for it in items)
    elif schema == "aime":
        assert [it["id"] for it in items] == ["split-60", "split-61"]
        assert items[1]["solution"] is None  # empty solution text is no solution
    elif schema == "matharena":
        assert [it["problem_type"] for it in items] == ["algebra", "algebra"]
        assert items[1]["answer"] == "\\frac{5}{6}"
    elif schema == "math":
        assert by_problem["What is $\\sqrt{49}$?"]["answer"] == "7"
        assert items[1]["answer"] == "2"  # the LAST boxed expression of the solution
        assert items[1]["problem_type"] == "counting_probability"
    elif schema == "questa":
        assert [it["id"] for it in items] == ["split-00000", "split-00001"]
        assert items[1]["problem"] == "Solve $x^2 - 5x + 6 = 0$ for the larger root."


def test_prepare_real_fills_train_types_from_corpus_and_caps(tmp_path):
    cfg = {"train": {"path": str(write_jsonl(tmp_path / "q.jsonl", questa_rows())), "schema": "questa"},
           "corpus": {"path": str(write_parquet(tmp_path / "o.parquet", openr1_rows())), "schema": "openr1"},
           "benchmarks": {"aime24": {"path": str(write_parquet(tmp_path / "a.parquet", aime_rows())), "schema": "aime"},
                          "hmmt25": {"path": str(write_jsonl(tmp_path / "h.jsonl", matharena_rows()))}},
           "max_corpus": 1}
    splits, benchmarks, reports = data.prepare_real(cfg)
    assert benchmarks == ["aime24", "hmmt25"]
    # the first QuestA query is the same problem as the first OpenR1 row: it takes its type
    assert splits["train"][0]["problem_type"] == "number_theory"
    assert splits["train"][1]["problem_type"] == "unknown"
    assert reports["train"]["problem_type_from_corpus"] == 1
    assert len(splits["corpus"]) == 1 and reports["corpus"]["capped"] == 1


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real public files) not present")
@pytest.mark.parametrize("name,limit", [("aime24.jsonl", None), ("aime25.jsonl", None), ("hmmt25_feb.jsonl", None),
                                        ("math500.jsonl", 60), ("math_test.jsonl", 120)])
def test_real_public_files_load(tmp_path, name, limit):
    raw = read_jsonl(SHARED / name)[:limit]
    path = write_jsonl(tmp_path / name, raw)  # a prefix keeps the test fast (math-verify ~10 ms per answer)
    items, report = data.load_source({"path": str(path), "schema": "auto"}, "b", "test")
    assert report["schema"] == ("math" if name == "math_test.jsonl" else "auto")
    assert report["rows_kept"] + sum(report["dropped"].values()) == len(raw)
    assert report["rows_kept"] >= 0.95 * len(raw)
    for it in items:
        assert "Please reason step by step" not in it["problem"] and "\\boxed{}" not in it["problem"]
    if name == "math_test.jsonl":
        by_idx = {it["id"]: it for it in items}
        for row in raw:
            if f"b-{row['idx']}" in by_idx:
                assert by_idx[f"b-{row['idx']}"]["answer"] == data.last_boxed(row["solution"])
                assert by_idx[f"b-{row['idx']}"]["problem_type"] == data.normalise_type(row["type"])
    else:
        assert [it["answer"] for it in items] == [r["answer"] for r in raw][:len(items)]
        assert all(r["problem"].startswith(it["problem"]) for it, r in zip(items, raw))


# ------------------------------------------------------------------------------------- bad rows
def test_bad_rows_are_dropped_and_reported_by_reason(tmp_path):
    rows = [{"id": 1, "problem": "What is $2+2$?", "answer": "4"},
            {"id": 2, "problem": "   ", "answer": "1"},
            {"id": 3, "problem": "Name the prime after 5.", "answer": ""},
            {"id": 4, "problem": "What is x?", "answer": "}}{"},
            {"id": 1, "problem": "What is $3+3$?", "answer": "6"},
            {"id": 6, "problem": "WHAT is   $2+2$?", "answer": "4"},
            {"id": 7, "problem": "Show that 2 is prime.", "answer": "proof"},
            {"id": 8, "problem": None, "answer": "1"},
            {"id": 9, "problem": "What is $\\frac{1}{2}+\\frac{1}{2}$?", "answer": "1"}]
    items, report = data.normalise_rows(rows, name="t", origin="bad.jsonl", schema="aime")
    assert [it["id"] for it in items] == ["t-1", "t-9"]
    assert report["dropped"] == {"empty or missing problem": 2,
                                 "no answer (missing column value and no \\boxed{} in the solution)": 1,
                                 "answer math-verify cannot parse": 1,
                                 "duplicate id": 1, "duplicate problem text": 1,
                                 "placeholder answer ('proof')": 1}
    assert report["rows_read"] == 9 and report["rows_kept"] == 2
    assert any("id 4" in e for e in report["examples"]["answer math-verify cannot parse"])


def test_unknown_layout_fails_naming_file_and_column(tmp_path):
    path = write_jsonl(tmp_path / "weird.jsonl", [{"text": "What is 1+1?", "label": "2"}])
    with pytest.raises(DataError, match=r"weird\.jsonl.*'problem'"):
        data.load_source({"path": str(path), "schema": "auto"}, "x", "test")
    no_problem = write_jsonl(tmp_path / "aime_no_problem.jsonl", [{"id": 1, "question": "1+1?", "answer": "2"}])
    with pytest.raises(DataError, match=r"aime_no_problem\.jsonl.*'problem'"):
        data.load_source({"path": str(no_problem), "schema": "aime"}, "x", "test")
    with pytest.raises(DataError, match="file not found"):
        data.load_source({"path": str(tmp_path / "missing.parquet")}, "x", "test")


def test_hub_sources_call_load_dataset_with_id_config_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(hf_id, config, split):
        calls.append((hf_id, config, split))
        if hf_id == "nobody/nothing":
            raise FileNotFoundError("no such dataset")
        return datasets.Dataset.from_list(openr1_rows())

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    items, report = data.load_source({"hf_id": "open-r1/OpenR1-Math-220k", "config": "default", "split": "train",
                                      "schema": "openr1"}, "corpus", "data.real.corpus")
    assert calls == [("open-r1/OpenR1-Math-220k", "default", "train")]
    assert report["origin"] == "hf://open-r1/OpenR1-Math-220k/default[train]" and len(items) == 2
    assert items[0]["source"] == "open-r1/OpenR1-Math-220k"
    with pytest.raises(DataError, match=r"nobody/nothing.*data\.real\.train"):
        data.load_source({"hf_id": "nobody/nothing", "split": "train"}, "train", "data.real.train")


def test_aime_without_an_id_column_gets_ids_from_row_positions(tmp_path):
    """Review N17: yentinglin/aime_2025's columns are unconfirmed; the aime schema uses `id` when present and
    otherwise derives a stable one from the row's position, instead of failing the stage."""
    rows = [{k: v for k, v in r.items() if k != "id"} for r in aime_rows()]
    path = write_jsonl(tmp_path / "aime25.jsonl", rows)
    items, report = data.load_source({"path": str(path), "schema": "aime"}, "aime25", "data.real.benchmarks.aime25")
    assert report["schema"] == "aime" and "id" not in report["columns"]
    assert [it["id"] for it in items] == ["aime25-00000", "aime25-00001"]
    with_ids, _ = data.load_source({"path": str(write_jsonl(tmp_path / "a24.jsonl", aime_rows())), "schema": "aime"},
                                   "aime24", "data.real.benchmarks.aime24")
    assert [it["id"] for it in with_ids] == ["aime24-60", "aime24-61"]


OPENR1_READ = ["problem", "solution", "answer", "problem_type", "uuid"]  # what the openr1 schema reads


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_only_the_schemas_columns_are_read(tmp_path, fmt):
    """Review N7: the R1 `generations`, `messages` and other columns never become Python rows, from a local file
    and (next test) from the hub; the items are the same as from the full rows."""
    path = (write_jsonl if fmt == "jsonl" else write_parquet)(tmp_path / f"openr1.{fmt}", openr1_rows())
    rows, _ = data.read_rows({"path": str(path), "schema": "openr1"}, "data.real.corpus")
    assert all(sorted(r) == sorted(OPENR1_READ) for r in rows) and len(rows) == 3
    auto, _ = data.read_rows({"path": str(path), "schema": "auto"}, "data.real.corpus")
    assert all(sorted(r) == sorted(OPENR1_READ) for r in auto)
    items, report = data.load_source({"path": str(path), "schema": "auto"}, "corpus", "data.real.corpus")
    full, _ = data.normalise_rows(openr1_rows(), name="corpus", origin=str(path), schema="openr1",
                                  source_label=path.name)
    assert report["schema"] == "openr1" and items == full


def test_hub_rows_are_selected_before_conversion(monkeypatch):
    import datasets

    converted = []

    class Spy(datasets.Dataset):
        def __iter__(self):
            converted.append(list(self.column_names))
            return super().__iter__()

    def fake_load_dataset(hf_id, config, split):
        ds = datasets.Dataset.from_list(openr1_rows())
        return Spy(ds.data, ds.info, ds.split)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows, _ = data.read_rows({"hf_id": "open-r1/OpenR1-Math-220k", "config": "all", "split": "train",
                              "schema": "openr1"}, "data.real.corpus")
    assert converted and all(sorted(c) == sorted(OPENR1_READ) for c in converted)
    assert all(sorted(r) == sorted(OPENR1_READ) for r in rows)
    with pytest.raises(DataError, match=r"hf://nobody/x\[train\].*'problem_type'"):
        monkeypatch.setattr(datasets, "load_dataset",
                            lambda *a, **k: datasets.Dataset.from_list([{"problem": "1+1?", "answer": "2"}]))
        data.read_rows({"hf_id": "nobody/x", "split": "train", "schema": "openr1"}, "data.real.corpus")


# ------------------------------------------------------------------------------------ world + CLI
def test_world_source_gives_configured_splits():
    config = load_config(REPO / "params.yaml")
    splits, benchmarks, report = data.prepare_data(config)
    world = config["data"]["world"]
    assert benchmarks == list(world["benchmarks"])
    assert len(splits["train"]) == world["n_train"] and len(splits["corpus"]) == world["n_corpus"]
    for name in benchmarks:
        assert len(splits[name]) == world["benchmarks"][name]["n"]
    ids = [it["id"] for s in splits.values() for it in s]
    assert len(ids) == len(set(ids))
    assert all(it["strategy"] and it["trace"] for it in splits["train"])
    assert all(not r["dropped"] for r in report["splits"].values())


def test_cli_real_paths_override_hub_ids_and_write_reports(tmp_path):
    bench = {name: {"path": str(write_jsonl(tmp_path / f"{name}.jsonl", matharena_rows())), "schema": "auto"}
             for name in ("aime24", "aime25", "hmmt25", "brumo25")}
    bad = questa_rows() + [{"problem": "", "answer": "1"}]
    override = {"data": {"source": "real", "real": {
        "train": {"path": str(write_jsonl(tmp_path / "q.jsonl", bad)), "schema": "questa"},
        "corpus": {"path": str(write_parquet(tmp_path / "o.parquet", openr1_rows())), "schema": "openr1"},
        "benchmarks": bench}}}
    cfg = tmp_path / "real.yaml"
    cfg.write_text(yaml.safe_dump(override))
    out, md = tmp_path / "prepared", tmp_path / "data_report.md"
    rc = main(["prepare-data", "--config", str(REPO / "params.yaml"), str(cfg), "--out-dir", str(out),
               "--report-md", str(md)])
    assert rc == 0
    assert len(read_jsonl(out / "train.jsonl")) == 2 and len(read_jsonl(out / "corpus.jsonl")) == 2
    assert sorted(p.name for p in (out / "bench").iterdir()) == sorted(f"{n}.jsonl" for n in bench)
    report = read_json(out / "report.json")
    assert report["splits"]["train"]["dropped"] == {"empty or missing problem": 1}
    text = md.read_text()
    assert "empty or missing problem" in text and "placeholder answer ('proof')" in text
