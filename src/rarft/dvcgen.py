"""Generate dvc.yaml from the Snakemake DAG, so the stage graph is written once (in workflow/rules).

Each concrete Snakemake job becomes one DVC stage with the same command, inputs (deps), outputs
(outs) and config sections (params). Outputs under results/ are kept in git (`cache: false`) so the
committed tables and figures are what a visitor sees; everything else goes to the DVC cache.

    python -m rarft export-dvc            # rewrite dvc.yaml
    python -m rarft export-dvc --check    # exit 1 if dvc.yaml is out of date (tests and CI use it)
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

from rarft.cli import STAGES
from rarft.config import ConfigError, load_config, merge_files
from rarft.io import write_text
from rarft.stage_keys import is_how_key, lookup

HEADER = (
    "# GENERATED from the Snakemake DAG by `python -m rarft export-dvc`; do not edit by hand.\n"
    "# Edit workflow/rules/*.smk and regenerate. tests/test_workflow.py fails when this file is stale.\n"
)
SRC = Path(__file__).resolve().parent  # src/rarft
LOG_REDIRECT = re.compile(r"\s*>\s*\S+\s+2>&1\s*$")


def snakemake_jobs(snakefile: str | Path = "Snakefile", configfiles: list[str] | None = None) -> list[dict]:
    """Every job of the full DAG (as with --forceall) as plain dicts, in a stable order.

    Uses Snakemake's Python API to build the DAG, then reads each job's rule, wildcards, files and
    formatted shell command (the same objects `snakemake -n -p` prints).
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[Path(p) for p in configfiles or []]),
            snakefile=Path(snakefile),
        )
        workflow_api.dag(dag_settings=DAGSettings(forceall=True))
        # The public DAG API prints the DAG but does not return it; these two calls are what
        # DAGApi.printdag() does before printing (snakemake 9.27, pinned).
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        present = merge_files(["params.yaml", *(configfiles or [])])
        jobs = []
        for job in workflow.dag.jobs:
            if job.rule.norun:  # `rule all`: a target list, not a stage
                continue
            cfg = getattr(job.params, "cfg", None) or {}
            jobs.append({
                "rule": job.rule.name,
                "wildcards": dict(job.wildcards_dict),
                "input": sorted(str(f) for f in job.input),
                "output": [str(f) for f in job.output],
                "shell": job.shellcmd,
                "params": dvc_param_keys(cfg, present),
            })
    return sorted(jobs, key=lambda j: (j["rule"], sorted(j["wildcards"].items())))


def dvc_param_keys(keys, present: dict) -> list[str]:
    """DVC `params:` for a job's Snakemake params keys (rarft.stage_keys): the same keys, a mapping spelt out as
    its leaves less rarft.stage_keys.HOW_KEYS, so that DVC (which compares a listed key's whole value) reruns a
    stage for the same edits as Snakemake, and not for `rl.trainer.save_steps`. Leaves are those of the params
    files (``present``): a key a schema default fills is not listed, as DVC cannot read it (it changes only by
    being written into params.yaml, after which `rarft export-dvc --check` asks for a regenerated dvc.yaml)."""
    def leaves(key: str, node):
        if is_how_key(key):
            return
        if isinstance(node, dict) and node:
            for k, v in node.items():
                yield from leaves(f"{key}.{k}", v)
        else:
            yield key

    return [leaf for key in keys if _has_key(present, key) for leaf in leaves(key, lookup(present, key))]


def _has_key(config: dict, dotted: str) -> bool:
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def stage_name(job: dict) -> str:
    parts = [job["rule"], *(job["wildcards"][k] for k in sorted(job["wildcards"]))]
    return re.sub(r"[^A-Za-z0-9_-]", "_", "-".join(parts))


def rarft_imports(path: str | Path) -> set[str]:
    """The rarft modules a source file imports anywhere in it (module level or inside functions)."""
    modules = {p.stem for p in SRC.glob("*.py")}
    out = set()
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "rarft" and len(parts) > 1 and parts[1] in modules:
                out.add(parts[1])
    return out - {Path(path).stem}


def stage_code(shell: str) -> list[str]:
    """src/rarft/*.py a command's CLI stage runs: its module and every rarft module it imports, transitively
    (code dependencies for DVC: an edit to contracts.py or tables.py reruns the stages that use them)."""
    m = re.search(r"-m rarft (\S+)", shell)
    if not m or m.group(1) not in STAGES:
        return []
    todo, seen = [STAGES[m.group(1)].split(":")[0].split(".")[-1]], set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += sorted(rarft_imports(SRC / f"{module}.py") - seen)
    return [f"src/rarft/{module}.py" for module in sorted(seen)]


def dvc_stages(jobs: list[dict]) -> dict:
    stages = {}
    for job in jobs:
        cmd = LOG_REDIRECT.sub("", " ".join(job["shell"].split()))  # DVC shows output live
        deps = list(job["input"])
        deps += stage_code(cmd)
        outs, metrics, plots = [], [], []
        for out in job["output"]:
            if out == "results/metrics.json":
                metrics.append({out: {"cache": False}})
            elif out.startswith("results/plots/"):  # the analyze rule lists its plot files one by one
                plots.append({out: {"cache": False}})
            else:
                outs.append({out: {"cache": False}} if out.startswith("results/") else out)
        stage = {"cmd": cmd, "deps": deps}
        if job["params"]:
            stage["params"] = list(job["params"])
        stage["outs"] = outs
        if metrics:
            stage["metrics"] = metrics
        if plots:
            stage["plots"] = plots
        stages[stage_name(job)] = stage
    return {"stages": stages}


def render(stages: dict) -> str:
    return HEADER + yaml.safe_dump(stages, sort_keys=False, width=1000)


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft export-dvc", description=__doc__.split("\n\n")[0])
    p.add_argument("--snakefile", default="Snakefile")
    p.add_argument("--out", default="dvc.yaml")
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if --out differs")
    args = p.parse_args(argv)
    text = render(dvc_stages(snakemake_jobs(args.snakefile)))
    out = Path(args.out)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            print(f"{out} is out of date with the Snakemake DAG: run `python -m rarft export-dvc`", file=sys.stderr)
            return 1
        print(f"{out} matches the Snakemake DAG")
        return 0
    write_text(out, text)
    print(f"wrote {out}: {len(yaml.safe_load(text)['stages'])} stages from the Snakemake DAG")
    return 0


def cli_apply(argv: list[str]) -> int:
    """Merge override files into params.yaml, so that `dvc repro` / `dvc exp run` use them.

    DVC reads parameters from params.yaml only; this is the DVC-side equivalent of Snakemake's
    `--configfile params.yaml config/qwen3-1.7b.yaml`. The result is validated before it is written.
    dvc.yaml is then regenerated from the Snakemake DAG of the applied config (`rarft export-dvc`): its
    stages name files (benchmarks, labelers, arms) and commands (the training launcher) that depend on it.
    """
    p = argparse.ArgumentParser(prog="rarft config-apply", description=cli_apply.__doc__)
    p.add_argument("overrides", nargs="+", help="override files, e.g. config/qwen3-1.7b.yaml")
    p.add_argument("--params", default="params.yaml", help="the file to update (default: params.yaml)")
    p.add_argument("--dvc", default="dvc.yaml", help="regenerate this dvc.yaml for the applied config (default)")
    p.add_argument("--no-dvc", action="store_true", help="leave dvc.yaml as it is")
    p.add_argument("--snakefile", default="Snakefile")
    args = p.parse_args(argv)
    merged = load_config([args.params, *args.overrides])
    header = f"# Generated by `rarft config-apply {' '.join(args.overrides)}` from {args.params}.\n"
    write_text(args.params, header + yaml.safe_dump(merged, sort_keys=False))
    print(f"wrote {args.params} (+ {', '.join(args.overrides)})")
    if not args.no_dvc:
        if not Path(args.snakefile).exists():
            raise ConfigError(f"{args.snakefile}: not found, so {args.dvc} cannot be regenerated for the applied "
                              "config; run from the project root or pass --no-dvc")
        extra = [] if Path(args.params).resolve() == Path("params.yaml").resolve() else [args.params]
        text = render(dvc_stages(snakemake_jobs(args.snakefile, extra)))
        write_text(args.dvc, text)
        print(f"wrote {args.dvc}: {len(yaml.safe_load(text)['stages'])} stages for the applied config")
    return 0
