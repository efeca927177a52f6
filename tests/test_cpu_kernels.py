"""The CPU kernels every stage uses are pinned to AVX2 (rarft.cli.PINNED_CPU_KERNELS), unless the user sets them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Run a stage through the CLI (an unknown config file: it fails fast, after the pinning), then ask torch.
PROBE = (
    "from rarft import cli\n"
    "cli.main(['validate-config', '--config', 'no-such-file.yaml'])\n"
    "import torch\n"
    "print(torch.backends.cpu.get_cpu_capability())\n"
)


def _capability(extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    env.update(extra_env, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_stages_run_torch_on_avx2_kernels_unless_the_user_chose():
    assert _capability({}) == "AVX2"
    assert _capability({"ATEN_CPU_CAPABILITY": "default"}) == "DEFAULT"
