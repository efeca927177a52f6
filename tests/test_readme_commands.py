"""Every command in README.md's ```bash blocks works as written (issue #20).

The blocks are parsed from README.md; each command line must have an entry in CHECKS (a new command without one
fails `test_every_readme_command_has_a_check`, a check whose command left the README fails it too). Commands are
run in a copy of the repository (tracked and untracked files, so the committed results/ as on a fresh clone; never
the working tree), through this environment's executables, as `. .venv/bin/activate` would have them:
- "run": as written; the check asserts on its output where the README promises something (no DVC warning, the
  headline metrics only, the summary's verdict).
- "dry": what would take the whole DAG, a GPU or the network runs as a dry run (`-n`, `make -n`, `dvc repro --dry`
  of the first stage), or is checked against the file it relies on; the reason is in CHECKS.
The ```yaml override block and its `snakemake --configfile config/mine.yaml` command are tests/test_readme_example.py's.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_rehearsal import _copy_repo

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def readme_commands(text: str) -> list[str]:
    """Each command line of the ```bash blocks, without its trailing `# comment`, in order, once."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            command = re.split(r"\s+#\s", " " + line, maxsplit=1)[0].strip()
            if command and not command.startswith("#") and command not in out:
                out.append(command)
    return out


def test_readme_commands_parses_blocks_and_strips_comments():
    text = ("x\n```bash\nmake run     # all of it\n# a note\nsnakemake -n\n```\n```yaml\na: 1\n```\n"
            "```bash\nmake run\n```\n")
    assert readme_commands(text) == ["make run", "snakemake -n"]


def _check_venv(repo: Path, env: dict) -> str:
    """`. .venv/bin/activate`: the venv is the one the Makefile creates (make setup), with snakemake and dvc in it."""
    makefile = (repo / "Makefile").read_text()
    assert "VENV := .venv" in makefile and "$(PYTHON) -m venv $(VENV)" in makefile
    assert (BIN / "snakemake").exists() and (BIN / "dvc").exists()
    return ""


def _check_gpu_extra(repo: Path, env: dict) -> str:
    """`pip install -e ".[gpu]"` needs CUDA wheels and the network: the extra exists and pins vLLM and TRL."""
    gpu = re.search(r"^gpu = \[(.*)\]$", (repo / "pyproject.toml").read_text(), re.M)
    assert gpu and '"vllm==' in gpu.group(1) and '"trl' in gpu.group(1), gpu
    return ""


def _check_api_key(repo: Path, env: dict) -> str:
    """`export OPENAI_API_KEY=...`: the variable the config reads the judge's key from."""
    from rarft.config import load_config

    cfg = load_config([repo / "params.yaml", repo / "config" / "qwen3-1.7b.yaml"])
    assert cfg["generation"]["api_key_env"] == "OPENAI_API_KEY"
    return ""


def _slurm_dry(repo: Path, env: dict) -> str:
    """The SLURM command, as a dry run (`-n`): the profile's use-conda needs conda, not installed here, even for a
    dry run, so it is switched off in the copy (tests/test_paper_scale.py checks the jobs' resources)."""
    prof = repo / "workflow" / "profiles" / "slurm" / "config.yaml"
    prof.write_text(prof.read_text().replace("use-conda: true", "use-conda: false"))
    return _run(["snakemake", "-n", *shlex.split(SLURM)[1:]], repo, env)


SLURM = "snakemake --workflow-profile workflow/profiles/slurm --configfile config/qwen3-1.7b.yaml"
# command as in the README -> ("run" | "dry", the argv actually run, or a function, and what its output must hold)
CHECKS = {
    "make run": ("dry", "make -n run", "python -m rarft summary --report report.html"),
    "make test": ("dry", "make -n test", "pytest -m \"not slow\""),
    ". .venv/bin/activate": ("dry", _check_venv, ""),
    "snakemake -n": ("run", "snakemake -n", "This was a dry-run"),
    "snakemake": ("dry", "snakemake -n", "This was a dry-run"),  # the whole DAG: a dry run here
    "snakemake --configfile params.yaml config/all-arms.yaml": (
        "dry", "snakemake -n --configfile params.yaml config/all-arms.yaml", "arm=radapo"),
    "dvc repro": ("dry", "dvc repro --dry prepare_data", "rarft prepare-data"),  # stages past it need its outputs
    "python -m rarft --help": ("run", "python -m rarft --help", "summary"),
    "snakemake --unlock": ("run", "snakemake --unlock", "Unlocked working directory"),
    "snakemake --report report.html": ("run", "snakemake --report report.html", "Report created"),
    "dvc metrics show": ("run", "dvc metrics show", "diff.ra_rft_grpo.mean"),
    "dvc metrics show results/metrics_full.json": ("run", "dvc metrics show results/metrics_full.json",
                                                   "world_easy"),
    "dvc plots show": ("run", "dvc plots show", "dvc_plots/index.html"),
    "python -m rarft summary": ("run", "python -m rarft summary", "Table 1, average@k"),
    'pip install -e ".[gpu]"': ("dry", _check_gpu_extra, ""),
    "python -m rarft plan --config params.yaml config/qwen3-1.7b.yaml": (
        "run", "python -m rarft plan --config params.yaml config/qwen3-1.7b.yaml", "GPU-h"),
    "export OPENAI_API_KEY=...": ("dry", _check_api_key, ""),
    "snakemake -n --configfile config/qwen3-1.7b.yaml": (
        "run", "snakemake -n --configfile config/qwen3-1.7b.yaml", "This was a dry-run"),
    SLURM: ("dry", _slurm_dry, "This was a dry-run"),
}


def test_every_readme_command_has_a_check():
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert sorted(commands) == sorted(CHECKS), (
        f"README commands without a check: {sorted(set(commands) - set(CHECKS))}; "
        f"checks of commands no longer in the README: {sorted(set(CHECKS) - set(commands))}")


def _run(argv: list[str], repo: Path, env: dict) -> str:
    exe = BIN / argv[0]
    argv = [str(exe) if exe.exists() else argv[0], *argv[1:]]
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    text = done.stdout + done.stderr
    assert done.returncode == 0, f"{shlex.join(argv)} failed (exit {done.returncode}):\n{text[-4000:]}"
    return text


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = _copy_repo(tmp_path_factory.mktemp("readme") / "repo")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)  # DVC looks for the clone's git repository
    return repo


@pytest.fixture(scope="module")
def env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("command", list(CHECKS))
def test_readme_command_works(command, repo, env):
    """About 2-6 s a command (a Snakemake DAG or DVC's pipeline built in the copy)."""
    _, how, expect = CHECKS[command]
    text = how(repo, env) if callable(how) else _run(shlex.split(how), repo, env)
    assert expect in text, text[-3000:]
    if command == "dvc plots show":
        assert "failed to load" not in text.lower() and "warning" not in text.lower(), text
    if command == "dvc metrics show":  # the headline few, not every number
        assert "world_easy" not in text and "diversity" not in text, text
    if command == "snakemake --report report.html":
        assert (repo / "report.html").stat().st_size > 100_000
