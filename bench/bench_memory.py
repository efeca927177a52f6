"""rarft plan's training-memory arithmetic against measured peaks: CPU training steps of Qwen3-shaped policies.

Each case runs in a fresh process: a randomly initialised model of the given shape (the tiny policy of
params.yaml, or SmolLM2-135M's shape: Llama layers, the same formula; weights are not needed to measure
memory), TRL's fused LM head (trl.trainer.utils.add_fused_lm_head, as GRPOTrainer calls it), a padded batch of
b sequences x s tokens (the last one 16 tokens shorter, so the attention mask is materialised as in a padded
GRPO batch), two steps of forward + backward + fused AdamW (transformers' default optimiser). Measured: the
process's peak resident memory (VmHWM) minus its resident memory after the imports, before the model exists.
Estimated: rarft.plan's formulas for one process on the CPU (fp32 throughout: no autocast, no CUDA context,
no fragmentation term): weights, gradients and AdamW state (16 B per parameter) plus the activations at the
peak (train_activation_gb).

  python bench/bench_memory.py              # every case; ~2 min on 2 cores
  python bench/bench_memory.py --case tiny-sdpa
  python bench/bench_memory.py --tiny       # one small case, seconds: checks the script runs (tests/test_bench.py)

The CPU allocator (glibc) is not the CUDA caching allocator and the CPU sdpa kernel is not the CUDA one, so
this checks the counting of weights, optimiser state, kept activations and recomputation, not CUDA-specific
terms (context, fragmentation, the memory-efficient kernel's mask copy): those stay assumptions until measured
on a GPU. The CPU's sdpa with a padding mask falls back to the math kernel, which keeps the attention scores: the
no-checkpointing sdpa case measures more than the CUDA kernel would keep.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SMOLLM = "HuggingFaceTB/SmolLM2-135M"
# On the CPU, TRL folds each logits tile in torch (no Triton), with ~3 tile-sized temporaries beside the tile
# (trl/kernels/chunked_logprob.py _forward_tile / _backward_tile); on a GPU the Triton kernel folds it in place.
CPU_TILE_COPIES = 4
# name -> (model: "tiny" (params.yaml policy.tiny) or an ARCHITECTURES id, batch, tokens, checkpointing, attention)
CASES = {
    "tiny-eager": ("tiny", 8, 1024, False, "eager"),
    "tiny-sdpa": ("tiny", 8, 1024, False, "sdpa"),
    "tiny-sdpa-ckpt": ("tiny", 8, 1024, True, "sdpa"),
    "smollm-sdpa": (SMOLLM, 2, 512, False, "sdpa"),
    "smollm-sdpa-ckpt": (SMOLLM, 2, 512, True, "sdpa"),
}
TINY_CASE = ("tiny-smallest", ("tiny", 2, 128, False, "eager"))  # --tiny only, not one of the measured cases


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def arch_for(model: str):
    from rarft.config import load_config
    from rarft.plan import arch_of

    arch, source = arch_of(model, load_config(Path(__file__).resolve().parents[1] / "params.yaml"))
    return arch, source


def measure(case: str) -> dict:
    """Runs in its own process: the peak resident memory of two training steps, above the post-import baseline."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model_name, b, s, ckpt, attn = CASES[case]
    arch, _ = arch_for(model_name)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    base = rss_kib("VmRSS")
    cfg = Qwen3Config(vocab_size=arch.vocab, hidden_size=arch.hidden, intermediate_size=arch.intermediate,
                      num_hidden_layers=arch.layers, num_attention_heads=arch.heads,
                      num_key_value_heads=arch.kv_heads, head_dim=arch.head_dim, tie_word_embeddings=arch.tied,
                      max_position_embeddings=max(s, 1024), attn_implementation=attn)
    model = Qwen3ForCausalLM(cfg).float()
    if ckpt:
        model.gradient_checkpointing_enable()
    model.train()
    add_fused_lm_head(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)
    ids = torch.randint(0, arch.vocab, (b, s))
    mask = torch.ones(b, s, dtype=torch.long)
    mask[-1, -16:] = 0  # right padding, as a GRPO batch's shorter completions
    labels = ids.masked_fill(mask == 0, -100)
    for _ in range(2):
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        loss = -(out.log_probs * out.label_mask).sum() / out.label_mask.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    n_params = sum(p.numel() for p in model.parameters())
    return {"case": case, "measured_gib": (rss_kib("VmHWM") - base) / 2 ** 20, "params": n_params}


def estimate(case: str) -> dict:
    from rarft.plan import GIB, static_gb, train_activation_gb

    model_name, b, s, ckpt, attn = CASES[case]
    arch, source = arch_for(model_name)
    state = static_gb(arch, "single", 1, 4, mixed=False)
    act = train_activation_gb(arch, b, s, 4, 4, ckpt, attn, tile_copies=CPU_TILE_COPIES)
    return {"estimate_gib": sum(state.values()) + sum(act.values()), "state_gib": sum(state.values()),
            "activations_gib": sum(act.values()), "params_table": arch.n_params, "source": source,
            "parts": {k: round(v, 3) for k, v in {**state, **act}.items()}, "gib": GIB}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=sorted(CASES), action="append", help="default: every case")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--tiny", action="store_true",
                   help="smallest sizes, seconds: checks that the script runs (tests/test_bench.py), not its ratios")
    args = p.parse_args()
    if args.tiny:
        CASES.update([TINY_CASE])
        args.case = [TINY_CASE[0]]
    if args.child:  # the measuring process
        print(json.dumps(measure(args.child)))
        return 0
    print("| case | model (shape from) | batch x tokens | checkpointing | attention | estimate GiB | measured GiB "
          "| estimate / measured |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.case or list(CASES):
        out = subprocess.run([sys.executable, __file__, "--child", case, *(["--tiny"] if args.tiny else [])],
                             capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        m = json.loads(out.stdout.strip().splitlines()[-1])
        e = estimate(case)
        model_name, b, s, ckpt, attn = CASES[case]
        if abs(m["params"] - e["params_table"]) > 0.01 * m["params"]:
            print(f"note: {case}: the table counts {e['params_table']:,.0f} parameters, the model has "
                  f"{m['params']:,}", file=sys.stderr)
        print(f"| {case} | {model_name} ({e['source']}) | {b} x {s} | {'on' if ckpt else 'off'} | {attn} | "
              f"{e['estimate_gib']:.3f} (state {e['state_gib']:.3f} + activations {e['activations_gib']:.3f}) | "
              f"{m['measured_gib']:.3f} | {e['estimate_gib'] / max(m['measured_gib'], 1e-9):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
