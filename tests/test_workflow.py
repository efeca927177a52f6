"""The stage graph is written once: dvc.yaml must be what the Snakemake DAG generates; config errors are readable."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rarft.config import ConfigError, deep_merge, load_config, validate_config
from rarft.dvcgen import dvc_stages, render, snakemake_jobs, stage_name

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return snakemake_jobs(ROOT / "Snakefile")
    finally:
        os.chdir(cwd)


def test_dvc_yaml_is_generated_from_the_snakemake_dag(jobs):
    committed = (ROOT / "dvc.yaml").read_text()
    assert committed == render(dvc_stages(jobs)), "dvc.yaml is stale: run `python -m rarft export-dvc`"


def test_every_rule_becomes_stages_with_the_same_files(jobs):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert len(stages) == len(jobs)
    rules = {j["rule"] for j in jobs}
    assert {"prepare_data", "decontaminate", "label_relevance", "train_retriever", "train_policy",
            "evaluate", "analyze"} <= rules
    for job in jobs:
        stage = stages[stage_name(job)]
        assert stage["cmd"] == " ".join(job["shell"].split(" > ")[0].split())
        outs = [next(iter(o)) if isinstance(o, dict) else o
                for key in ("outs", "metrics", "plots") for o in stage.get(key, [])]
        assert sorted(outs) == sorted(job["output"])
        assert set(job["input"]) <= set(stage["deps"])


def test_a_changed_dag_is_detected(jobs):
    """The check is real: dropping one job or one input changes the rendering."""
    assert render(dvc_stages(jobs[1:])) != render(dvc_stages(jobs))
    altered = [dict(j) for j in jobs]
    altered[0] = {**altered[0], "input": altered[0]["input"] + ["data/extra.jsonl"]}
    assert render(dvc_stages(altered)) != render(dvc_stages(jobs))


@pytest.mark.skipif(shutil.which("dvc") is None and not (Path(sys.executable).parent / "dvc").exists(),
                    reason="dvc is not installed")
def test_dvc_reads_the_same_stage_graph():
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    out = subprocess.run([dvc, "stage", "list", "--name-only"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names = set(out.stdout.split())
    assert names == set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


def test_snakemake_dry_run_builds_the_whole_dag():
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    out = subprocess.run([snakemake, "-n", "--forceall", "--quiet", "rules"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    for rule in ("prepare_data", "train_policy", "evaluate", "analyze"):
        assert rule in out.stdout + out.stderr


def test_params_yaml_is_valid():
    cfg = load_config(ROOT / "params.yaml")
    assert cfg["data"]["source"] == "world"


@pytest.mark.parametrize("override", ["qwen3-1.7b.yaml", "qwen3-4b.yaml"])
def test_paper_scale_overrides_are_valid(override):
    cfg = load_config([ROOT / "params.yaml", ROOT / "config" / override])
    assert cfg["policy"]["base"].startswith("Qwen/Qwen3-")
    assert cfg["rl"]["trainer"]["num_generations"] == 16 and cfg["rl"]["trainer"]["beta"] == 0.0
    assert cfg["evaluation"]["k"] == 32


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rl:\n  trainer: {max_steps: 0}\n  arms: [grpo, not_an_arm]\nretriever:\n  top_kk: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config([ROOT / "params.yaml", bad])
    msg = str(e.value)
    assert "rl.trainer.max_steps" in msg and "rl.arms.1" in msg
    assert "retriever" in msg and "top_kk" in msg
    assert "bad.yaml" in msg


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="seed"):
        validate_config({"data": {}}, "x")


def test_deep_merge_overrides_like_snakemake():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    merged = deep_merge(base, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base["a"]["c"] == [1, 2]


def test_cli_reports_config_errors_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: -3\n")
    out = subprocess.run([sys.executable, "-m", "rarft", "validate-config", "--config",
                          str(ROOT / "params.yaml"), str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "seed" in out.stderr and "Traceback" not in out.stderr


def test_scheduling_priorities_put_the_longest_chain_first():
    from rarft.arms import schedule_priority
    from rarft.config import load_config

    cfg = load_config("params.yaml")
    chain = [schedule_priority("init_policy", cfg), schedule_priority("label_relevance", cfg, labeler="gain"),
             schedule_priority("train_retriever", cfg), schedule_priority("retrieve", cfg, retriever="finetuned"),
             schedule_priority("train_policy", cfg, arm="rarft"),
             schedule_priority("evaluate", cfg, policy="rarft", setting="topk-finetuned")]
    assert chain == sorted(chain, reverse=True) and min(chain) > 0
    # off the chain: below every job of the chain
    off = [schedule_priority("retrieve", cfg, retriever="offshelf"), schedule_priority("train_policy", cfg, arm="grpo"),
           schedule_priority("evaluate", cfg, policy="grpo", setting="none"), schedule_priority("analyze", cfg)]
    assert max(off) < min(chain)
    # the gain labels' input comes with them (a priority does not pass to inputs)
    assert schedule_priority("sample_candidates", cfg) == schedule_priority("label_relevance", cfg, labeler="gain")


def _snakemake():
    return shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")


def test_snakemake_lint_is_clean():
    """`snakemake --lint`: no shell command reads variables from outside its rule, functions live in common.smk."""
    out = subprocess.run([_snakemake(), "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "Lints for" not in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]


def test_resources_come_from_one_table(tmp_path):
    """`resources: **res(rule)`: a rule's own entry, else `resources.default`, as the scheduler sees them."""
    override = tmp_path / "res.yaml"
    override.write_text("resources:\n  train_policy: {mem_mb: 12345}\n  default: {runtime: 77}\n")
    out = subprocess.run([_snakemake(), "-n", "--forceall", "--configfile", str(override)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    import re

    by_rule = {}
    for rule, resources in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", out.stdout + out.stderr,
                                      flags=re.M):
        by_rule.setdefault(rule, set()).add(resources)
    assert all("mem_mb=12345" in r and "runtime=30" in r for r in by_rule["train_policy"])  # params.yaml's own
    assert all("mem_mb=4000" in r and "runtime=77" in r and "gpu=0" in r for r in by_rule["evaluate"])


def test_every_rule_names_its_code():
    """A `# code: src/rarft/<module>.py:<function>` line above each rule points at a function that exists."""
    import ast
    import re

    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("rule "):
                continue
            m = re.match(r"# code: (src/rarft/\w+\.py):(\w+)", lines[i - 1])
            assert m, f"{smk.name}:{i + 1}: no `# code:` line above {line}"
            tree = ast.parse((ROOT / m.group(1)).read_text())
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert m.group(2) in names, f"{smk.name}: {m.group(1)} has no function {m.group(2)}"


def test_rules_refer_to_each_others_outputs():
    """A file one rule writes and another reads is spelled once: inputs use `rules.<rule>.output.<name>`."""
    import re

    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    for path in ("data/prepared/train.jsonl", "data/prepared/corpus.jsonl", "data/clean/train.jsonl",
                 "data/clean/corpus.jsonl", "data/traces/corpus.jsonl", "data/labels/candidates.jsonl",
                 "data/labels/{labeler}.jsonl", "models/policy/base", "models/retriever/finetuned\"",
                 "results/reports/labelers.csv", "results/reports/retrievers.csv", "runs/train/{arm}/curve.jsonl"):
        assert len(re.findall(re.escape(path), text)) == 1, path


def test_settings_and_curve_arms_come_from_rarft_arms(jobs):
    """The evaluate rule's setting constraint, its parser and Figure 3's arms are rarft.arms' (one registry)."""
    import re

    from rarft import analysis, arms, evaluate

    assert evaluate.parse_setting is arms.parse_setting and analysis.CURVE_ARMS is arms.CURVE_ARMS
    settings = {j["wildcards"]["setting"] for j in jobs if j["rule"] == "evaluate"}
    assert settings and all(re.fullmatch(arms.SETTING_PATTERN, s) for s in settings)
    assert {arms.parse_setting(s)[1] for s in settings} - {None} <= set(arms.RETRIEVERS)
    assert not re.fullmatch(arms.SETTING_PATTERN, "top1-nonesuch")
    curves = {o for j in jobs if j["rule"] == "analyze" for o in j["input"] if o.endswith("curve.jsonl")}
    assert curves == {f"runs/train/{a}/curve.jsonl" for a in arms.CURVE_ARMS}


def test_dvc_stages_depend_on_the_code_they_import():
    """A stage's DVC deps hold its module and every rarft module it imports (transitively, lazy imports too)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    code = {name: {d.split("/")[-1] for d in s["deps"] if d.startswith("src/rarft/")} for name, s in stages.items()}
    assert {"analysis.py", "tables.py", "figures.py", "diversity.py", "contracts.py", "stats.py"} <= code["analyze"]
    assert {"labels_compare.py", "labels.py", "contracts.py", "retrieval.py"} <= code["compare_labelers"]
    assert "labels_compare.py" not in code["label_relevance-oracle"]
    assert all(code[name] for name in stages)


# Keys a stage module reads that are in no job's params, each with the reason (rarft.stage_keys' docstring).
NOT_PARAMS = {
    "rl.arms": "shapes the DAG: adding an arm adds jobs and changes analyze's inputs",
    "labels.run": "shapes the DAG (which labelers run)",
    "resources": "the scheduler's request, not what a job writes",
    "generation.batch_size": "inference batching: how fast, not what",
    "generation.http_concurrency": "requests in flight: how fast, not what",
    "evaluation.temperature": "train-policy only prints a note when rl.trainer.temperature differs from it",
}
# rule -> the CLI module whose `config[...]` reads the test checks against the rule's keys
RULE_MODULES = {"prepare_data": "data", "decontaminate": "decontam", "build_traces": "traces",
                "init_policy": "policy", "sample_candidates": "candidates", "label_relevance": "labels",
                "compare_labelers": "labels_compare", "train_retriever": "train_retriever",
                "train_colbert_retriever": "train_retriever", "evaluate_retrievers": "evaluate_retrievers",
                "retrieve": "retrieval", "train_policy": "train", "evaluate": "evaluate", "analyze": "analysis"}


def test_every_config_key_a_stage_module_reads_is_in_its_params():
    """rarft.stage_keys drifts from the code when a stage starts reading a new key: a literal
    `config["a"]["b"]` in the stage's module must be under (or above) a key of one of the rule's jobs (any
    wildcards), in the embedded default or the paper config, or in NOT_PARAMS with a reason."""
    import re

    from rarft.arms import PLAIN_ARMS, RA_ARMS, RETRIEVERS
    from rarft.labels import LABELERS
    from rarft.stage_keys import stage_keys

    wildcards = {"label_relevance": [{"labeler": name} for name in LABELERS],
                 "retrieve": [{"retriever": name} for name in RETRIEVERS],
                 "train_policy": [{"arm": arm} for arm in [*PLAIN_ARMS, *RA_ARMS]],
                 "evaluate": [{"setting": s} for s in ("none", "top1-finetuned", "topk-finetuned")]}
    configs = [load_config(ROOT / "params.yaml"), load_config([ROOT / "params.yaml", ROOT / "config/qwen3-1.7b.yaml"])]
    for module in sorted(set(RULE_MODULES.values())):
        rules = [r for r, m in RULE_MODULES.items() if m == module]  # train_retriever.py: both retriever rules
        keys = set(NOT_PARAMS)
        for config in configs:
            for rule in rules:
                for wc in wildcards.get(rule, [{}]):
                    keys |= set(stage_keys(config, rule, **wc))
        rule = " / ".join(rules)
        text = (ROOT / "src" / "rarft" / f"{module}.py").read_text()
        for m in re.finditer(r'config((?:\["\w+"\])+)', text):
            read = ".".join(re.findall(r'\["(\w+)"\]', m.group(1)))
            assert any(read == k or read.startswith(k + ".") or k.startswith(read + ".") for k in keys), (
                f"src/rarft/{module}.py reads config key {read!r}, which is in no {rule} job's params: add it to "
                "rarft.stage_keys (or to NOT_PARAMS here with the reason)")


def test_dvc_params_and_snakemake_params_are_the_same_keys(jobs):
    """dvc.yaml's `params:` spell out the same keys as the Snakemake jobs' params; no stage lists a whole
    section or a key that only shapes the DAG, and commands name config files relative to the project."""
    from rarft.stage_keys import is_how_key

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for job in jobs:
        listed = stages[stage_name(job)].get("params", [])
        assert listed == job["params"]
        assert not {"rl", "rl.arms", "rl.launcher", "evaluation", "analysis", "retriever", "generation"} & set(listed)
        assert not [k for k in listed if is_how_key(k)]
        assert "/work" not in job["shell"] and str(ROOT) not in job["shell"]
    grpo = stages["train_policy-grpo"]["params"]
    assert "rl.trainer.learning_rate" in grpo and "rl.dapo.epsilon_high" not in grpo
    assert "rl.trainer.save_steps" not in grpo and "rl.curve_arms" in grpo
    assert "rl.sft.trainer.learning_rate" in stages["train_policy-sft"]["params"]
    assert "rl.sft.trainer.learning_rate" not in grpo
    assert "analysis.diversity_top_k" not in stages["evaluate-grpo-none"]["params"]
    assert "analysis.diversity_top_k" in stages["evaluate-rarft-topk-finetuned"]["params"]
    assert "params" not in stages["label_relevance-oracle"]
