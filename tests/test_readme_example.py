"""README.md's "Your own model, corpus and benchmarks" example, run offline on local files (issue #13).

The override block and the snakemake command are parsed from README.md, so the doc and this test cannot drift;
only the block's placeholder paths are replaced, by files written here in plain layouts a user would have:
queries (JSONL) and corpus (Parquet) with problem / solution / answer / problem_type columns, a benchmark (JSONL)
with id / problem / answer, and a local checkpoint of a model nobody here wrote (SmolLM2-135M-Instruct, Llama-shaped,
from conftest's `smollm2_dir`) as both the policy and the teacher. The problems come from the world generator, so
nothing outside the repo is read.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_path, make_world
from test_rehearsal import _copy_repo

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Your own model, corpus and benchmarks"
MINE = "config/mine.yaml"
PAPER_BENCHMARKS = ("aime24", "aime25", "hmmt25", "brumo25")
# placeholder in the README's block -> the name of the file this test writes in its place
PLACEHOLDERS = {
    "/data/my_queries.jsonl": "my_queries.jsonl",
    "/data/my_corpus.parquet": "my_corpus.parquet",
    "/data/mybench.jsonl": "mybench.jsonl",
    "/models/my-checkpoint": None,  # the SmolLM2 checkpoint
    "/models/my-teacher": None,  # the same checkpoint as the teacher
}
# a 135M model prefills each teacher and labeling prompt on one CPU thread per job: sizes keep that to seconds
N_TRAIN, N_CORPUS, N_BENCH = 16, 24, 6

# Test-only settings, applied after config/mine.yaml (never by editing the README's block). Sizes, so the run fits
# in a few minutes on 2 CPU cores, plus two settings that only such short generations need (as config/rehearsal.yaml):
# an 8-token rewrite is hardly ever a valid cheatsheet, so the corpus keeps the original solution where it is not (the
# traces report still counts every failed rewrite), and 8 new tokens solve next to nothing, so nearly every measured
# gain is 0 and threshold -1 makes each labelled pair a positive for the retriever to train on.
TEST_OVERRIDE = """\
traces:
  keep_original_if_invalid: true
  teacher: {max_new_tokens: 8}
labels:
  candidates_per_query: 2
  gain: {n_samples: 1, max_new_tokens: 8, threshold: -1.0}
retriever:
  train:
    batch_size: 8
    trainer: {num_train_epochs: 1}
evaluation: {k: 2, max_new_tokens: 8, bootstrap_resamples: 100}
"""
TEST_OVERRIDE_FILE = "readme-example-sizes.yaml"


def readme_example() -> tuple[str, list[str]]:
    """(the section's YAML override block, its snakemake command as argv), parsed from README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    command = re.search(r"`(snakemake [^`]*--configfile [^`]*)`", section)
    assert block and command, f"README.md {SECTION!r}: no ```yaml block or no `snakemake ... --configfile` command"
    argv = shlex.split(command.group(1))
    assert MINE in argv, f"the README's command does not run {MINE}: {command.group(1)}"
    return block.group(1), argv


def write_user_files(user: Path) -> dict[str, list[dict]]:
    """The user's own files (world problems in plain layouts); returns the rows written, per file name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    world = make_world(1, N_TRAIN, N_CORPUS, {"mybench": {"n": N_BENCH, "difficulty": "easy"}})
    plain = ("problem", "solution", "answer", "problem_type")
    # the world's traces stand in for the free-form solutions a real file has
    queries = [{**{k: it[k] for k in plain if k != "solution"}, "solution": it["trace"]} for it in world["train"]]
    corpus = [{**{k: it[k] for k in plain if k != "solution"}, "solution": it["trace"]} for it in world["corpus"]]
    bench = [{"id": f"mb-{i:03d}", "problem": it["problem"], "answer": it["answer"]}
             for i, it in enumerate(world["mybench"], 1)]
    user.mkdir(parents=True)
    (user / "my_queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(corpus), user / "my_corpus.parquet")
    (user / "mybench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bench), encoding="utf-8")
    return {"my_queries.jsonl": queries, "my_corpus.parquet": corpus, "mybench.jsonl": bench}


def localise(block: str, user: Path, checkpoint: Path) -> str:
    """The README's block with its placeholder paths (and nothing else) replaced by local ones."""
    for placeholder, name in PLACEHOLDERS.items():
        assert placeholder in block, f"README.md's example no longer names {placeholder}; update this test"
        block = block.replace(placeholder, str(checkpoint if name is None else user / name))
    return block


def test_readme_example_validates_and_names_only_local_sources(tmp_path):
    """The block on top of params.yaml passes the schema; every split it reads is a path, mybench the only benchmark."""
    import yaml

    from rarft.config import load_config

    block, _ = readme_example()
    (tmp_path / "mine.yaml").write_text(block, encoding="utf-8")
    config = load_config([ROOT / "params.yaml", tmp_path / "mine.yaml"])
    real = config["data"]["real"]
    assert config["data"]["source"] == "real"
    assert sorted(real["benchmarks"]) == ["mybench"]
    for name, source in [("train", real["train"]), ("corpus", real["corpus"]), *real["benchmarks"].items()]:
        assert source["path"] in PLACEHOLDERS, (name, source)  # a path wins over the hub id params.yaml merges in
    assert yaml.safe_load(block)["policy"]["base"] in PLACEHOLDERS
    # nothing the example schedules needs an endpoint: the oracle is world-only, the judge and an openai teacher
    # need a server
    assert set(config["labels"]["run"]) <= {"gain"}, config["labels"]["run"]
    teacher = config["traces"]["teacher"]
    assert config["traces"]["mode"] == "rewrite" and teacher["backend"] == "transformers", teacher
    assert teacher["model"] in PLACEHOLDERS, teacher


def run_snakemake(argv: list[str], cwd: Path, env: dict, what: str) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{what} timed out; stderr tail:\n{(e.stderr or b'')[-4000:]!s}")
    if done.returncode != 0:  # snakemake's stderr, then the tail of each failed job's log
        failed = re.findall(r"log: (\S+) \(check log file", done.stderr)
        logs = "\n".join(f"--- {log}:\n{(cwd / log).read_text(errors='replace')[-2000:]}"
                         for log in failed if (cwd / log).is_file())
        pytest.fail(f"{what} failed (exit {done.returncode}): {shlex.join(argv)}\n"
                    f"stderr tail:\n{done.stderr[-5000:]}\n{logs}")
    return done


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_example_runs_offline_on_local_files(tmp_path, smollm2_dir):
    """Dry run of the whole DAG, then the jobs through retrieval and the base policy's evaluation on `mybench`.

    Measured on the 2-core development machine: 174 s for the test on idle cores; 295 s with another DAG sharing
    them, where the 10 jobs took 249 s (the teacher rewrite ~100 s and the gain labels ~90 s: SmolLM2 prefills
    every prompt on one thread). A README example that cannot run offline fails here with snakemake's stderr and
    the failed job's log."""
    block, readme_argv = readme_example()
    written = write_user_files(tmp_path / "user")
    work = _copy_repo(tmp_path / "repo")
    (work / MINE).write_text(localise(block, tmp_path / "user", Path(smollm2_dir)), encoding="utf-8")
    (work / TEST_OVERRIDE_FILE).write_text(TEST_OVERRIDE, encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               # the rules' `python` is this environment's, whether or not it is activated
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    env.pop("PYTHONPATH", None)
    snakemake = [cli_path("snakemake"), *readme_argv[1:]]

    # 1. The README's command as written, dry run: the whole DAG builds, on mybench only, from local sources.
    t0 = time.monotonic()
    dry = run_snakemake([snakemake[0], "-n", "-p", *snakemake[1:]], work, env, "the README's command (dry run)")
    took_dry = time.monotonic() - t0
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout, re.M))
    assert counts.get("all") == "1" and int(counts["total"]) > 20, dry.stdout[-3000:]
    assert "data/clean/bench/mybench.jsonl" in dry.stdout
    assert re.search(rf"--config params.yaml \S*{MINE} ", dry.stdout), "the stages do not read params.yaml + " + MINE
    for bench in PAPER_BENCHMARKS:
        assert bench not in dry.stdout, f"a job names the paper benchmark {bench}"
    hub_ids = re.findall(r"hf_id: ([\w.-]+/[\w.-]+)", (ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert hub_ids  # params.yaml's real sources are hub datasets; the example's jobs name none of them
    for hub_id in [*hub_ids, "hf://"]:
        assert hub_id not in dry.stdout, f"a job names the hub dataset {hub_id}"
    assert "data/labels/oracle.jsonl" not in dry.stdout and "data/labels/gain.jsonl" in dry.stdout

    # 2. The real run of the jobs that need no GPU and no network, through retrieval and the base evaluation.
    targets = ["data/clean/bench/mybench.jsonl", "data/retrieval/finetuned.jsonl",
               "runs/eval/base/none/summary.json", "runs/eval/base/top1-finetuned/summary.json"]
    at = snakemake.index(MINE) + 1
    argv = [snakemake[0], *targets, *snakemake[1:at], TEST_OVERRIDE_FILE, *snakemake[at:]]
    t0 = time.monotonic()
    run_snakemake(argv, work, env, "the README's command on the targets")
    took = time.monotonic() - t0
    print(f"README example: dry run {took_dry:.0f} s, run through retrieval and the base evaluation {took:.0f} s")

    # the splits come from the user's files, by path (never the hub)
    report = json.loads((work / "data/prepared/report.json").read_text(encoding="utf-8"))
    user = tmp_path / "user"
    assert report["source"] == "real" and report["benchmarks"] == ["mybench"]
    for split, name in [("train", "my_queries.jsonl"), ("corpus", "my_corpus.parquet"), ("mybench", "mybench.jsonl")]:
        assert report["splits"][split]["origin"] == str(user / name), report["splits"][split]
        assert report["splits"][split]["rows_read"] == len(written[name])
    assert sorted(p.name for p in (work / "data/clean/bench").iterdir()) == ["mybench.jsonl"]
    bench = jsonl(work / "data/clean/bench/mybench.jsonl")
    user_bench = {f"mybench-{r['id']}": r for r in written["mybench.jsonl"]}
    assert bench and {r["id"] for r in bench} <= set(user_bench)
    assert len(bench) >= N_BENCH - 1  # decontamination may drop a benchmark item that repeats a training query
    for row in bench:
        assert (row["problem"], row["answer"]) == (user_bench[row["id"]]["problem"], user_bench[row["id"]]["answer"])
        assert row["source"] == "mybench.jsonl"

    # the local teacher rewrote the corpus: every item keeps a trace, its own solution where the rewrite failed
    traces = json.loads((work / "results/reports/traces.json").read_text(encoding="utf-8"))
    assert traces["mode"] == "rewrite" and traces["teacher"] == str(smollm2_dir)
    corpus = jsonl(work / "data/traces/corpus.jsonl")
    solutions = {r["problem"]: r["solution"] for r in written["my_corpus.parquet"]}
    assert len(corpus) == traces["n_in"] == len(solutions)
    kept = sum(r["trace"] == solutions[r["problem"]] for r in corpus)
    assert kept == traces["kept_original_solution"] == traces["n_dropped"], traces
    pointer = json.loads((work / "models/policy/base/rarft_model.json").read_text(encoding="utf-8"))
    assert pointer == {"name_or_path": str(smollm2_dir)}

    # gain labels under the local policy, a retriever trained on them, top-k contexts for every benchmark item
    gain = jsonl(work / "data/labels/gain.jsonl")
    assert gain and {r["labeler"] for r in gain} == {"gain"}
    assert not (work / "data/labels/oracle.jsonl").exists()
    retrieval = jsonl(work / "data/retrieval/finetuned.jsonl")
    corpus_ids = {r["id"] for r in corpus}
    by_split = {}
    for r in retrieval:
        by_split.setdefault(r["split"], set()).add(r["id"])
        assert r["contexts"] and {c["id"] for c in r["contexts"]} <= corpus_ids
    assert set(by_split) == {"train", "mybench"} and by_split["mybench"] == {r["id"] for r in bench}

    # the base policy's evaluation on mybench, without and with the top-1 retrieved trace
    for setting in ("none", "top1-finetuned"):
        summary = json.loads((work / f"runs/eval/base/{setting}/summary.json").read_text(encoding="utf-8"))
        assert summary["policy"] == "base" and summary["setting"] == setting and summary["k"] == 2
        assert list(summary["benchmarks"]) == ["mybench"]
        assert summary["benchmarks"]["mybench"]["n_problems"] == len(bench)
        assert set(summary["per_problem"]["mybench"]) == {r["id"] for r in bench}
        samples = jsonl(work / f"runs/eval/base/{setting}/samples.jsonl")
        assert len(samples) == 2 * len(bench) and {s["benchmark"] for s in samples} == {"mybench"}
