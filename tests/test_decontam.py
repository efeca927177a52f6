"""decontaminate: normalisation, catching reformatted copies, the re-check, real MATH-500 vs MATH test."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from rarft import decontam
from rarft.cli import main
from rarft.config import load_config
from rarft.data import strip_instructions
from rarft.io import read_json, read_jsonl
from rarft.world import generate_world

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

BENCH_PROBLEM = ("Let $x$ and $y$ be real numbers with $\\dfrac{x}{y} = \\left(2 + \\sqrt{3}\\right)$ and "
                 "$x^2+y^2=16$. Find the largest possible value of $x\\,y$ and write it as $m\\sqrt{n}$.")


def reformat_lightly(text: str) -> str:
    """What a copy in a training set tends to look like: case, spacing, LaTeX spacing, $ signs changed."""
    out = text.replace("\\dfrac", "\\frac").replace("\\left(", "(").replace("\\right)", ")")
    out = out.replace("x^2+y^2", "x^2 + y^2").replace("x\\,y", "x\\; y").replace("$", "")
    return ("  " + out.upper().replace(" ", "   ")
            + "\nPlease reason step by step, and put your final answer within \\boxed{}.")


def world():
    config = load_config(REPO / "params.yaml")
    return config, generate_world(**config["data"]["world"])


def test_light_reformatting_gives_the_same_ngrams():
    original = decontam.ngram_set(BENCH_PROBLEM, 8)
    copy_ = decontam.ngram_set(reformat_lightly(BENCH_PROBLEM), 8)
    assert decontam.tokens("$\\dfrac{1}{2}\\,\\quad x$") == decontam.tokens("\\frac{1}{2} X")
    assert decontam.tokens("\\left( a+b \\right)") == decontam.tokens("(a + b)")
    assert copy_ == original
    # a different problem that shares a phrase shares only a few n-grams
    other = decontam.ngram_set("Let $x$ and $y$ be real numbers with $x + y = 10$. Find $x y$.", 8)
    assert len(original & other) / len(other) < 0.5


def test_injected_reformatted_benchmark_problem_is_caught_and_reported():
    config, splits = world()
    names = list(config["data"]["world"]["benchmarks"])
    benchmarks = {n: copy.deepcopy(splits[n]) for n in names}
    benchmarks[names[0]].append({"id": "bench-x", "problem": BENCH_PROBLEM})
    target = benchmarks[names[1]][3]
    train = splits["train"] + [{"id": "train-injected", "problem": reformat_lightly(BENCH_PROBLEM)}]
    corpus = splits["corpus"] + [
        {"id": "corpus-injected", "problem": reformat_lightly(target["problem"])},
        # a benchmark problem inside a longer text is contained in it: also contamination
        {"id": "corpus-embedded", "problem": "Warm-up: what is 3 + 4? Main problem: " + target["problem"]
         + " Then explain your method to a friend in two sentences."}]
    min_overlap = config["data"]["decontamination"]["min_overlap"]
    train_c, corpus_c, removed = decontam.decontaminate(train, corpus, benchmarks, ngram=8, min_overlap=min_overlap)
    by_id = {r["id"]: r for r in removed}
    # exactly the injected items go; distinct world problems sharing a story all stay
    assert set(by_id) == {"train-injected", "corpus-injected", "corpus-embedded"}
    assert by_id["train-injected"]["matched"] == "bench-x" and by_id["train-injected"]["overlap"] >= 0.9
    assert by_id["corpus-injected"]["matched"] == target["id"]
    assert by_id["corpus-injected"]["matched_split"] == names[1]
    assert by_id["corpus-embedded"]["matched"] == target["id"] and by_id["corpus-embedded"]["overlap"] == 1.0
    assert len(train_c) == len(splits["train"]) and len(corpus_c) == len(splits["corpus"])


def test_any_ngram_rule_flags_template_world_but_min_overlap_keeps_it():
    _, splits = world()
    benchmarks = {"world_easy": splits["world_easy"], "world_hard": splits["world_hard"]}
    # open-r1's rule on a template world: shared story sentences flag most items
    train0, _, _ = decontam.decontaminate(splits["train"], splits["corpus"], benchmarks, ngram=8, min_overlap=0.0)
    assert len(train0) < len(splits["train"]) / 2


def test_corpus_copy_of_a_training_query_is_removed():
    _, splits = world()
    query = splits["train"][5]
    corpus = splits["corpus"] + [{"id": "corpus-dup", "problem": query["problem"].upper()}]
    _, corpus_c, removed = decontam.decontaminate(splits["train"], corpus, {"b": splits["world_easy"]},
                                                  ngram=8, min_overlap=0.9)
    assert [(r["id"], r["against"], r["matched"]) for r in removed] == [("corpus-dup", "train", query["id"])]
    assert "corpus-dup" not in {it["id"] for it in corpus_c}


def test_recheck_raises_when_a_benchmark_item_is_left():
    items = [{"id": "b-1", "problem": BENCH_PROBLEM}]
    with pytest.raises(decontam.ContaminationError, match="b-1"):
        decontam.recheck([{"id": "t-1", "problem": reformat_lightly(BENCH_PROBLEM)}], [], {"b": items},
                         ngram=8, min_overlap=0.9)
    decontam.recheck([{"id": "t-2", "problem": "What is 2 + 2?"}], [], {"b": items}, ngram=8, min_overlap=0.0)


def test_short_problems_compare_whole_text():
    bench = {"b": [{"id": "b-1", "problem": "Compute $2+3$."}]}
    _, corpus_c, removed = decontam.decontaminate([], [{"id": "c-1", "problem": "COMPUTE 2 + 3."},
                                                       {"id": "c-2", "problem": "Compute $2+4$."}], bench,
                                                  ngram=8, min_overlap=0.0)
    assert [r["id"] for r in removed] == ["c-1"] and [c["id"] for c in corpus_c] == ["c-2"]


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real public files) not present")
def test_math500_against_math_test_flags_all_500():
    def load(name, prefix):
        return [{"id": f"{prefix}-{i}", "problem": strip_instructions(json.loads(line)["problem"])}
                for i, line in enumerate((SHARED / name).read_text().splitlines())]

    math500, math_test = load("math500.jsonl", "m500"), load("math_test.jsonl", "mt")
    assert len(math500) == 500
    _, corpus_c, removed = decontam.decontaminate([], math_test, {"math500": math500}, ngram=8, min_overlap=0.9)
    assert {r["matched"] for r in removed} == {it["id"] for it in math500}
    assert len(corpus_c) == len(math_test) - len(removed) and len(removed) >= 500


def test_cli_writes_clean_splits_and_reports(tmp_path):
    prepared, clean, report = tmp_path / "prepared", tmp_path / "clean", tmp_path / "reports" / "decontamination"
    assert main(["prepare-data", "--config", str(REPO / "params.yaml"), "--out-dir", str(prepared),
                 "--report-md", str(tmp_path / "data_report.md")]) == 0
    bench_name = sorted(p.stem for p in (prepared / "bench").glob("*.jsonl"))[0]
    victim = read_jsonl(prepared / "bench" / f"{bench_name}.jsonl")[0]
    train = read_jsonl(prepared / "train.jsonl")
    train.append({**train[0], "id": "train-copy", "problem": reformat_lightly(victim["problem"])})
    (prepared / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    assert main(["decontaminate", "--config", str(REPO / "params.yaml"), "--in-dir", str(prepared),
                 "--out-dir", str(clean), "--report", str(report)]) == 0
    rep = read_json(f"{report}.json")
    assert [(r["id"], r["matched"]) for r in rep["removed"]] == [("train-copy", victim["id"])]
    assert rep["counts"]["train"] == {"before": len(train), "removed": 1, "after": len(train) - 1}
    assert "train-copy" not in {r["id"] for r in read_jsonl(clean / "train.jsonl")}
    assert read_jsonl(clean / "bench" / f"{bench_name}.jsonl") == read_jsonl(prepared / "bench" / f"{bench_name}.jsonl")
    assert "train-copy" in Path(f"{report}.md").read_text()


def test_cli_writes_only_under_the_folders_it_is_given(tmp_path, monkeypatch):
    """Without --report / --report-md the reports go beside the outputs, never into ./results."""
    monkeypatch.chdir(tmp_path)
    config = str(REPO / "params.yaml")
    assert main(["prepare-data", "--config", config, "--out-dir", "prep"]) == 0
    assert main(["decontaminate", "--config", config, "--in-dir", "prep", "--out-dir", "elsewhere"]) == 0
    written = {str(p.relative_to(tmp_path)).split("/")[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {"prep", "elsewhere"}
    assert (tmp_path / "prep" / "data_report.md").exists()
    assert read_json(tmp_path / "elsewhere" / "decontamination.json")["recheck"].startswith("passed")
    assert (tmp_path / "elsewhere" / "decontamination.md").exists()
