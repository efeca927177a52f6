"""Generation throughput: batched vs per-sample (transformers backend), and vLLM beside it on a GPU.

Same prompts, same number of samples and new tokens; only how sequences are grouped differs:
- per-sample: one `generate` call per (prompt, sample), batch size 1;
- batched-no-share: all prompts x samples in batches of generation.batch_size, each sample
  prefilling its own copy of the prompt;
- batched-dynamic: the same batches, each prompt prefilled once and its cache copied to its samples,
  in transformers' default DynamicCache (concatenated at every decoding step);
- batched: the same, in a preallocated StaticCache written in place (the default).
Half the prompts carry a retrieved context (about twice as long), as in RA evaluation.
On a CUDA machine with vLLM installed, the vLLM backend runs the same workload (SamplingParams(n)).

    python bench/bench_generation.py [--prompts 16] [--samples 8] [--tokens 48] [--policy-dir DIR] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(backend, prompts, sampling, tokenizer) -> tuple[float, int, int]:
    t = time.perf_counter()
    out = backend.generate(prompts, sampling)
    seconds = time.perf_counter() - t
    tokens = sum(len(tokenizer(s, add_special_tokens=False)["input_ids"]) for samples in out for s in samples)
    return seconds, sum(len(s) for s in out), tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--tokens", type=int, default=48, help="max new tokens per sample")
    p.add_argument("--policy-dir", help="an existing policy (default: models/policy/base, else a tiny random one)")
    p.add_argument("--config", nargs="+", default=[str(Path(__file__).resolve().parents[1] / "params.yaml")])
    p.add_argument("--tiny", action="store_true",
                   help="smallest sizes, seconds: checks that the script runs (tests/test_bench.py), not its ratios")
    args = p.parse_args()
    if args.tiny:
        args.prompts, args.samples, args.tokens = 2, 2, 2

    import torch

    from rarft.config import load_config
    from rarft.generation import Sampling, TransformersBackend, make_backend
    from rarft.policy import build_tiny_policy, world_texts
    from rarft.prompts import build_prompt
    from rarft.world import generate_world

    config = load_config(args.config)
    wcfg = config["data"]["world"]
    world = generate_world(**{**wcfg, "n_train": 12 if args.tiny else 60, "n_corpus": 12 if args.tiny else 90,
                              "benchmarks": {"bench": {"n": args.prompts, "difficulty": "easy"}}})
    policy_dir = args.policy_dir or ("models/policy/base" if os.path.isdir("models/policy/base") else None)
    if policy_dir is None:
        policy_dir = build_tiny_policy(world_texts(world["train"] + world["corpus"]), config["policy"]["tiny"],
                                       os.path.join(tempfile.mkdtemp(), "tiny"), seed=0)
    ctx = world["corpus"][0]
    prompts = [build_prompt(it["problem"], [ctx] if i % 2 else []) for i, it in enumerate(world["bench"])]
    sampling = Sampling(n=args.samples, temperature=1.0, max_new_tokens=args.tokens, seed=0)

    batched = make_backend(str(policy_dir), config, "transformers")
    batched.show_progress = False
    single = TransformersBackend(batched.model, batched.tokenizer, batch_size=1,
                                 enable_thinking=batched.enable_thinking, show_progress=False)
    no_share = TransformersBackend(batched.model, batched.tokenizer, batch_size=batched.batch_size,
                                   enable_thinking=batched.enable_thinking, show_progress=False, share_prefix=False)
    dynamic = TransformersBackend(batched.model, batched.tokenizer, batch_size=batched.batch_size,
                                  enable_thinking=batched.enable_thinking, show_progress=False, static_cache=False)
    print(f"policy {policy_dir} on {batched.model.device}; {args.prompts} prompts x {args.samples} samples, "
          f"<= {args.tokens} new tokens; batch size {batched.batch_size}; torch threads {torch.get_num_threads()}")
    batched.generate(prompts[:1], Sampling(n=1, max_new_tokens=4))  # warm-up
    results = {}
    for name, backend in (("per-sample", single), ("batched-no-share", no_share), ("batched-dynamic", dynamic),
                         ("batched", batched)):
        sec, seqs, toks = run(backend, prompts, sampling, batched.tokenizer)
        results[name] = (sec, seqs, toks)
        print(f"  {name:<16} {sec:7.2f} s  {seqs / sec:8.1f} seq/s  {toks / sec:9.1f} tok/s")
    if torch.cuda.is_available():
        try:
            import vllm  # noqa: F401
        except ImportError:
            print("  vllm        skipped: not installed")
        else:
            config["generation"].setdefault("vllm", {})["gpu_memory_utilization"] = 0.3
            v = make_backend(str(policy_dir), config, "vllm")
            v.generate(prompts[:1], Sampling(n=1, max_new_tokens=4))
            sec, seqs, toks = run(v, prompts, sampling, batched.tokenizer)
            results["vllm"] = (sec, seqs, toks)
            print(f"  {'vllm':<11} {sec:7.2f} s  {seqs / sec:8.1f} seq/s  {toks / sec:9.1f} tok/s")
    else:
        print("  vllm        skipped: no CUDA device")
    base = results["per-sample"][2] / results["per-sample"][0]
    ratios = ", ".join(f"{k} {v[2] / v[0] / base:.1f}x" for k, v in results.items() if k != "per-sample")
    print(f"throughput (tokens/s) relative to per-sample: {ratios}")


if __name__ == "__main__":
    main()
