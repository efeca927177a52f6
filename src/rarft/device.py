"""The one place the config's `device` (auto | cpu | cuda) becomes a torch device name.

Every stage that runs a model (retrieval, retriever training, the labelers' comparison, analysis,
generation, the policy warm-up, policy training) asks here, so `device: cuda` on a machine or in an
environment without CUDA fails the same way everywhere: one ConfigError naming the key, before any
model is loaded. `auto` takes CUDA when torch sees it and the CPU otherwise.
"""

from __future__ import annotations

from rarft.config import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(config: dict) -> str:
    """'cuda' or 'cpu' for the config's top-level `device` key."""
    want = config["device"]
    if want not in DEVICES:
        raise ConfigError(f"device: {want!r}; one of {', '.join(DEVICES)}")
    if want == "cpu":
        return "cpu"
    import torch

    cuda = torch.cuda.is_available()
    if want == "cuda" and not cuda:
        build = torch.version.cuda
        why = (f"this torch ({torch.__version__}) is a CPU-only build" if build is None
               else f"torch {torch.__version__} (CUDA {build}) sees no CUDA device")
        raise ConfigError(f"device: cuda, but {why}. Run this stage on a GPU node with a CUDA torch "
                          "(workflow/envs/gpu.yaml, or `pip install -e '.[gpu]'`), or set device: cpu (or auto)")
    return "cuda" if cuda else "cpu"


def allocated_cpus() -> int:
    """CPU cores this job may use: the SLURM allocation (SLURM_CPUS_PER_TASK), else the process's CPU
    affinity (cgroups, taskset), else os.cpu_count(). os.cpu_count() alone is the whole node's count and
    oversubscribes an 8-core allocation on a 128-core node."""
    import os

    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
