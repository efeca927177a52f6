"""The estimators behind every reported number, in one place (plain numpy, no I/O).

evaluate.py scores a run with average@k, pass@k and a bootstrap interval over problems;
tables.py / analysis.py add a stratified interval for the mean over benchmarks and paired differences
between two runs, each drawn from its own generator (rng_for) so that adding a table or a row never
shifts another cell's interval.
"""

from __future__ import annotations

import zlib

import numpy as np


def average_at_k(rewards) -> float:
    """Mean accuracy over all samples of all problems (rewards: problems x k, 0/1)."""
    return float(np.mean(np.asarray(rewards, dtype=float)))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with c correct of n samples (Chen et al., 2021):
    1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if k > n:
        raise ValueError(f"pass@k needs k <= n (k={k}, n={n})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(rewards, k: int) -> float:
    """pass@k averaged over problems (rewards: problems x n)."""
    r = np.asarray(rewards, dtype=float)
    return float(np.mean([pass_at_k(r.shape[1], int(row.sum()), k) for row in r]))


def bootstrap_ci(per_problem, resamples: int, level: float, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over problems (resampling problems with replacement)."""
    x = np.asarray(per_problem, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = (1.0 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def rng_for(seed: int, *labels: str) -> np.random.Generator:
    """A generator per cell, so adding a table or a row never shifts another cell's interval."""
    return np.random.default_rng([seed, zlib.crc32("/".join(labels).encode())])


def _as_arrays(per_problem: dict[str, dict[str, float]], benches: list[str]) -> list[np.ndarray]:
    return [np.array([per_problem[b][p] for p in sorted(per_problem[b])], dtype=float) for b in benches]


def bootstrap_mean_ci(per_problem: dict[str, dict[str, float]], benches: list[str], resamples: int,
                      level: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean over benchmarks of the per-benchmark mean; interval by resampling problems within each."""
    arrays = _as_arrays(per_problem, benches)
    point = float(np.mean([a.mean() for a in arrays]))
    boot = np.mean([a[rng.integers(0, len(a), (resamples, len(a)))].mean(axis=1) for a in arrays], axis=0)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)


def paired_difference(pp_a: dict[str, dict[str, float]], pp_b: dict[str, dict[str, float]],
                      benches: list[str], resamples: int, level: float,
                      rng: np.random.Generator) -> list[dict]:
    """A - B per benchmark and for the mean over benchmarks, paired by problem id.

    Returns rows {benchmark, diff, ci_low, ci_high, p_le_0, n_problems}; p_le_0 is the bootstrap
    share of resamples in which A does not beat B (a one-sided check, not a test correction).
    """
    rows, boots, points = [], [], []
    for b in benches:
        common = sorted(set(pp_a.get(b, {})) & set(pp_b.get(b, {})))
        if not common:
            continue
        d = np.array([pp_a[b][p] - pp_b[b][p] for p in common])
        boot = d[rng.integers(0, len(d), (resamples, len(d)))].mean(axis=1)
        boots.append(boot)
        points.append(d.mean())
        rows.append(_diff_row(b, d.mean(), boot, level, len(d)))
    if len(boots) > 1:
        rows.append(_diff_row("mean", float(np.mean(points)), np.mean(boots, axis=0), level,
                              sum(r["n_problems"] for r in rows)))
    return rows


def _diff_row(bench: str, point: float, boot: np.ndarray, level: float, n: int) -> dict:
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return {"benchmark": bench, "diff": 100 * float(point), "ci_low": 100 * float(lo),
            "ci_high": 100 * float(hi), "p_le_0": float(np.mean(boot <= 0)), "n_problems": n}
