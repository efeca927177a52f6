"""The policy: a tiny Qwen3 built and warmed up here (embedded default), or a hub model used as is.

`models/policy/<name>/` is either a Hugging Face checkpoint directory or, for a hub base that is not
copied, a pointer file `rarft_model.json` ({"name_or_path": ...}); `resolve_model` turns either into
what `from_pretrained` takes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from rarft.contracts import check_items
from rarft.io import atomic_path, read_json, write_json
from rarft.world import analogous

POINTER_FILE = "rarft_model.json"

# Qwen3's special tokens. <think> and </think> are ordinary added tokens in Qwen3 (not "special"),
# so `skip_special_tokens=True` keeps them in decoded text, as with the real tokenizer.
ENDOFTEXT, IM_START, IM_END, THINK, END_THINK = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"
# Qwen2/Qwen3's pre-tokenisation pattern, except that a whole number with its leading space is one
# pre-token (Qwen splits digits one by one): the world's numbers are small, so BPE learns " 19" as one
# token and the tiny policy copies it in one step (the world probe: fewer miscopied numbers).
PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def probes_benchmarks(config: dict) -> bool:
    """Whether init-policy probes the benchmarks (policy_probe.json): only the world's tiny policy, whose
    warm-up this checks; a hub base is used as is."""
    return config["data"]["source"] == "world" and config["policy"]["base"] == "tiny"


def world_texts(items: list[dict]) -> list[str]:
    """The texts a tiny policy's tokenizer is trained on: problems, traces and the prompt template."""
    from rarft.prompts import build_prompt, prompt_text

    texts = [prompt_text(build_prompt("", [{"problem": "x", "trace": "y"}]))]
    for item in items:
        texts.append(item["problem"])
        if item.get("trace"):
            texts.append(item["trace"])
    return texts


def build_tokenizer(texts: list[str], vocab_size: int, whole_pieces: Sequence[str] = ()):
    """A byte-level BPE tokenizer trained on ``texts``, with Qwen3's special tokens and chat template.

    Each of ``whole_pieces`` (strings the pre-tokenizer keeps in one piece, such as " Lu" or "-mo")
    becomes exactly one token, however often it occurs in ``texts``: see `add_whole_pieces`.

    The chat template is Qwen3's own (as shipped in TRL, which recognises it), so `enable_thinking=False`
    puts the empty `<think>\\n\\n</think>\\n\\n` block into the generation prompt exactly as Qwen3 does,
    and a prompt rendered with `add_generation_prompt=True` is a prefix of prompt + completion: the
    property TRL's SFTTrainer needs to mask the prompt out of the loss for prompt-completion data.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen3_chat_template

    specials = [ENDOFTEXT, IM_START, IM_END]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials + [THINK, END_THINK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: any text round-trips
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok = add_whole_pieces(tok, whole_pieces)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in (THINK, END_THINK)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        chat_template=qwen3_chat_template,
        padding_side="left",  # decoder-only generation pads on the left
        model_max_length=1 << 20,
    )


def add_whole_pieces(tok, pieces: Sequence[str]):
    """Return ``tok`` (a trained byte-level BPE `tokenizers.Tokenizer`) with merges appended so that each
    of ``pieces`` encodes to one token.

    BPE merges what is frequent in its training texts. The world's own rule names are frequent there, so
    they became one or two tokens ("Lu-mo": ' Lu', '-mo'), while the warm-up's random names stayed split
    into 4-7 rarely seen pieces: the policy learned to match names in one form and met them in another.
    Appended merges rank last, so they join only what the trained merges leave of a piece, and leave
    other words' tokens alone unless those split the same way.
    """
    from tokenizers import Tokenizer

    for piece in pieces:
        parts = tok.encode(piece, add_special_tokens=False).tokens
        if len(parts) <= 1:
            continue
        spec = json.loads(tok.to_str())
        model = spec["model"]
        joined = parts[0]
        for part in parts[1:]:
            model["merges"].append([joined, part])
            joined += part
            model["vocab"].setdefault(joined, len(model["vocab"]))
        tok = Tokenizer.from_str(json.dumps(spec))
        if len(tok.encode(piece, add_special_tokens=False).tokens) != 1:
            raise RuntimeError(f"tokenizer: could not make {piece!r} one token (got {parts})")
    return tok


def build_tiny_policy(texts: list[str], tiny_cfg: dict, out_dir: str | os.PathLike, seed: int,
                      whole_pieces: Sequence[str] = ()) -> Path:
    """Train a tokenizer on ``texts`` (``whole_pieces`` one token each, see `build_tokenizer`) and save
    it with a randomly initialised Qwen3 to ``out_dir``.

    Deterministic for a fixed ``seed`` (same tokenizer, same weights). Written atomically.
    """
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer(texts, int(tiny_cfg["vocab_size"]), whole_pieces)
    heads = int(tiny_cfg["num_attention_heads"])
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=int(tiny_cfg["hidden_size"]),
        intermediate_size=int(tiny_cfg["intermediate_size"]),
        num_hidden_layers=int(tiny_cfg["num_hidden_layers"]),
        num_attention_heads=heads,
        num_key_value_heads=int(tiny_cfg["num_key_value_heads"]),
        head_dim=int(tiny_cfg["hidden_size"]) // heads,
        max_position_embeddings=int(tiny_cfg["max_position_embeddings"]),
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    # Like Qwen3's checkpoints: generation stops at <|im_end|> or <|endoftext|>.
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True, temperature=1.0, top_p=1.0,
    )
    return save_policy(model, tokenizer, out_dir)


def save_policy(model, tokenizer, out_dir: str | os.PathLike) -> Path:
    """save_pretrained model and tokenizer into ``out_dir`` atomically (a killed save leaves nothing)."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def resolve_model(path_or_id: str | os.PathLike) -> str:
    """What `from_pretrained` takes for a policy: pointer dir -> its name, checkpoint dir -> itself,
    anything else (a hub id) -> itself."""
    path = Path(path_or_id)
    pointer = path / POINTER_FILE
    if pointer.is_file():
        data = read_json(pointer)
        name = data.get("name_or_path") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            from rarft.io import DataError

            raise DataError(f"{pointer}: key 'name_or_path' must be a non-empty string")
        return name
    return str(path_or_id)


def write_pointer(name_or_path: str, out_dir: str | os.PathLike) -> Path:
    """A policy directory that only names a hub id or path (the paper uses the base model as is)."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        (tmp / POINTER_FILE).write_text(json.dumps({"name_or_path": name_or_path}) + "\n", encoding="utf-8")
    return out_dir


def sft_examples(train: list[dict], corpus: list[dict], context_fraction: float, seed: int,
                 enable_thinking: bool) -> list[dict]:
    """Warm-up examples from the training queries and corpus (a tiny policy on non-world data).

    A ``context_fraction`` share of them (drawn by seed) gets one corpus item of the SAME latent
    strategy, never the item itself, prepended as the reference. The world uses `world.generate_warmup`.
    """
    import random

    rng = random.Random(seed)
    by_strategy: dict[str, list[dict]] = {}
    for item in corpus:
        by_strategy.setdefault(item.get("strategy"), []).append(item)
    items = []
    for item in train + corpus:
        contexts = []
        if rng.random() < context_fraction:
            pool = [c for c in by_strategy.get(item.get("strategy"), []) if c["id"] != item["id"]]
            if pool:
                contexts = [rng.choice(pool)]
        items.append({**item, "contexts": contexts})
    rng.shuffle(items)
    return chat_examples(items, enable_thinking)


def chat_examples(items: list[dict], enable_thinking: bool) -> list[dict]:
    """Prompt-completion conversational examples (what TRL's SFTTrainer takes) for items carrying a
    ``contexts`` list, built by the one prompt builder."""
    from rarft.prompts import build_prompt

    return [{
        "prompt": build_prompt(item["problem"], item.get("contexts", []), target_id=item["id"]),
        "completion": [{"role": "assistant", "content": item["trace"]}],
        "chat_template_kwargs": {"enable_thinking": enable_thinking},
    } for item in items]


def sft_warmup(model, tokenizer, examples: list[dict], sft_cfg: dict, seed: int, work_dir: str | os.PathLike):
    """Supervised warm-up with TRL's SFTTrainer (loss on the completion only). Returns the trainer."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(work_dir),
        num_train_epochs=float(sft_cfg["epochs"]),
        learning_rate=float(sft_cfg["learning_rate"]),
        per_device_train_batch_size=int(sft_cfg["batch_size"]),
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        weight_decay=0.0,
        bf16=False,
        use_cpu=True,  # the tiny model trains fastest on the CPU; moving it to a GPU buys nothing
        gradient_checkpointing=False,  # nothing to save at this size, and it costs time
        seed=seed,
        data_seed=seed,
        # prompts with and without a reference differ ~2x in length: batching by length cuts padding
        train_sampling_strategy="group_by_length",
        save_strategy="no",
        report_to=[],
        logging_steps=0.05,  # a ratio of the total steps: ~20 loss points whatever the data size
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                         processing_class=tokenizer)
    trainer.train()
    return trainer


def probe_accuracy(model, tokenizer, items: list[dict], contexts: list[list[dict]] | None = None, *,
                   n_samples: int, max_new_tokens: int, temperature: float, enable_thinking: bool, seed: int,
                   batch_size: int = 64) -> float:
    """Mean math-verify reward of sampled completions over ``items`` (a quick check, not the evaluation).

    ``contexts[i]`` is the list of reference items prepended to ``items[i]`` (empty for none).
    """
    import torch
    from math_verify import parse, verify

    from rarft.prompts import build_prompt

    contexts = contexts or [[] for _ in items]
    texts = [tokenizer.apply_chat_template(build_prompt(it["problem"], ctx, target_id=it["id"]), tokenize=False,
                                           add_generation_prompt=True, enable_thinking=enable_thinking)
             for it, ctx in zip(items, contexts)]
    jobs = [(i, t) for i, t in enumerate(texts) for _ in range(n_samples)]
    torch.manual_seed(seed)
    rewards = []
    model.eval()
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        batch = tokenizer([t for _, t in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(model.device)
        with torch.no_grad():
            out = model.generate(**batch, do_sample=True, temperature=temperature, top_p=1.0, top_k=0,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        completions = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        for (i, _), completion in zip(chunk, completions):
            gold = parse(f"${items[i]['answer']}$")
            pred = parse(completion)
            rewards.append(float(bool(pred) and verify(gold, pred)))
    return sum(rewards) / max(len(rewards), 1)


def probe_benchmarks(model, tokenizer, benchmarks: dict[str, list[dict]], corpus: list[dict], config: dict) -> dict:
    """World only: the warmed-up policy's accuracy on each benchmark with no reference and with a random
    corpus trace of the SAME hidden strategy (an oracle context), at the evaluation's temperature.

    This checks the positive control's first premise (the policy can carry a known strategy over from a
    right analogue) before any retrieval is trained; the evaluate stage measures the real settings.
    """
    import random

    ev = config["evaluation"]
    n_samples = int(config["policy"]["tiny"]["probe_samples"])
    by_strategy: dict[str, list[dict]] = {}
    for c in corpus:
        by_strategy.setdefault(c["strategy"], []).append(c)
    rng = random.Random(int(config["seed"]))
    out = {}
    kw = dict(n_samples=n_samples, max_new_tokens=int(ev["max_new_tokens"]), temperature=float(ev["temperature"]),
              enable_thinking=bool(config["policy"]["enable_thinking"]), seed=int(config["seed"]))
    for name, items in benchmarks.items():
        # an analogue (same strategy, and the question's name); a same-strategy trace where the corpus has none
        # (a world too small to hold every name), counted in the row so the report says how often
        analogues = [[c for c in by_strategy[it["strategy"]] if analogous(it, c)] for it in items]
        same = [[rng.choice(pool or by_strategy[it["strategy"]])] for it, pool in zip(items, analogues)]
        row: dict = {"n": len(items), "no_analogue": sum(not pool for pool in analogues)}
        for phrasing in ("named_rule", "plain"):
            idx = [i for i, it in enumerate(items) if bool(it.get("named_rule")) == (phrasing == "named_rule")]
            if idx:
                row[f"{phrasing}_n"] = len(idx)
                row[f"{phrasing}_none"] = probe_accuracy(model, tokenizer, [items[i] for i in idx], **kw)
                row[f"{phrasing}_same_strategy"] = probe_accuracy(model, tokenizer, [items[i] for i in idx],
                                                                  [same[i] for i in idx], **kw)
        for setting in ("none", "same_strategy"):
            row[setting] = sum(row.get(f"{p}_{setting}", 0.0) * row.get(f"{p}_n", 0)
                               for p in ("named_rule", "plain")) / len(items)
        out[name] = row
    return {"temperature": float(ev["temperature"]), "samples_per_item": n_samples, "benchmarks": out}


def init_policy(train: list[dict], corpus: list[dict], config: dict, out_dir: str | os.PathLike,
                sources: tuple[str, str] = ("train", "corpus"), exclude_items: list[dict] = ()) -> dict:
    """Write the base policy to ``out_dir`` and return a summary dict.

    ``policy.base: tiny`` builds a tiny Qwen3 on the world's texts and warms it up with SFT (on the
    world: generated warm-up problems, none equal to a problem of train, corpus or ``exclude_items``);
    anything else (a hub id or local path) is written as a pointer only: the paper uses the base as is.
    """
    import time

    out_dir = Path(out_dir)
    base = config["policy"]["base"]
    if base != "tiny":
        write_pointer(base, out_dir)
        return {"base": base, "pointer": True}

    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seed = int(config["seed"])
    tiny = config["policy"]["tiny"]
    enable_thinking = bool(config["policy"]["enable_thinking"])
    check_items(train, sources[0], need=("trace", "answer"))
    check_items(corpus, sources[1], need=("trace", "answer", "strategy"))
    start = time.time()
    sft = tiny["sft"]
    if config["data"]["source"] == "world":
        # Warm up on generated problems (random rule names, the world's splits excluded), not on the
        # training queries: RL must not start from a policy that has seen their solutions.
        from rarft.prompts import normalise_text
        from rarft.world import NAME_PIECES, generate_warmup, warmup_mix

        exclude = {normalise_text(it["problem"]) for it in train + corpus + list(exclude_items)}
        warm = generate_warmup(seed + int(config["data"]["world"]["seed"]) + 1, int(sft["warmup_items"]), exclude,
                               **warmup_mix(sft))
        examples = chat_examples(warm, enable_thinking)
        texts = world_texts(train + corpus + warm + [c for it in warm for c in it["contexts"]])
        whole_pieces = NAME_PIECES
    else:
        examples = sft_examples(train, corpus, float(sft["context_fraction"]), seed, enable_thinking)
        texts = world_texts(train + corpus)
        whole_pieces = ()
    work_parent = out_dir.parent if out_dir.parent.exists() else None
    with tempfile.TemporaryDirectory(prefix=".init-policy.", dir=work_parent) as work:
        built = build_tiny_policy(texts, tiny, Path(work) / "random", seed, whole_pieces)
        tokenizer = AutoTokenizer.from_pretrained(built)
        model = AutoModelForCausalLM.from_pretrained(built, dtype=torch.float32)
        trainer = sft_warmup(model, tokenizer, examples, sft, seed, Path(work) / "trainer")
        save_policy(trainer.model, tokenizer, out_dir)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "base": "tiny",
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "sft_examples": len(examples),
        "sft_steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "seconds": time.time() - start,
        "model": trainer.model,
        "tokenizer": tokenizer,
    }


def cli(argv: list[str]) -> int:
    import argparse

    from rarft.config import ConfigError, add_config_argument, load_config
    from rarft.io import read_jsonl

    p = argparse.ArgumentParser(prog="rarft init-policy", description="Build the base policy (models/policy/base).")
    add_config_argument(p)
    p.add_argument("--train", required=True, help="training queries (data/clean/train.jsonl)")
    p.add_argument("--corpus", required=True, help="corpus with traces (data/traces/corpus.jsonl)")
    p.add_argument("--out", required=True, help="output policy directory (models/policy/base)")
    p.add_argument("--exclude", nargs="*", default=[],
                   help="JSONL files whose problems the warm-up must never contain (the benchmarks)")
    p.add_argument("--probe-report", default=None,
                   help="world only: write the benchmark probe (no reference / a corpus analogue) here")
    args = p.parse_args(argv)
    config = load_config(args.config)
    if args.probe_report and not probes_benchmarks(config):
        raise ConfigError("init-policy: --probe-report needs the world's tiny policy (data.source: world, "
                          "policy.base: tiny); a hub base is used as is and not probed")
    train, corpus = read_jsonl(args.train), read_jsonl(args.corpus)
    exclude = [row for path in args.exclude for row in read_jsonl(path)]
    summary = init_policy(train, corpus, config, args.out, sources=(args.train, args.corpus), exclude_items=exclude)
    if summary.get("pointer"):
        print(f"init-policy: {args.out} points to {summary['base']} (used as is, not downloaded)")
        return 0
    probe = ""
    if args.probe_report:
        benchmarks = {Path(path).stem: read_jsonl(path) for path in args.exclude}
        report = probe_benchmarks(summary["model"], summary["tokenizer"], benchmarks, corpus, config)
        report["warmup"] = {k: summary[k] for k in ("params", "sft_examples", "sft_steps", "first_loss",
                                                      "final_loss", "seconds")}
        write_json(args.probe_report, report)
        probe = "; benchmarks " + ", ".join(
            f"{b}: {r['none']:.2f} alone / {r['same_strategy']:.2f} with a corpus analogue"
            + (f" ({r['no_analogue']} items with none: a same-strategy trace instead)" if r["no_analogue"] else "")
            for b, r in report["benchmarks"].items())
    print(f"init-policy: tiny Qwen3 with {summary['params']:,} params, {summary['sft_steps']} SFT steps on "
          f"{summary['sft_examples']} examples in {summary['seconds']:.0f}s, train loss "
          f"{summary['first_loss']:.3f} -> {summary['final_loss']:.3f}{probe}; wrote {args.out}")
    return 0
