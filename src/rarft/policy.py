"""The policy: a tiny Qwen3 built and warmed up here (embedded default), or a hub model used as is.

`models/policy/<name>/` is either a Hugging Face checkpoint directory or, for a hub base that is not
copied, a pointer file `rarft_model.json` ({"name_or_path": ...}); `resolve_model` turns either into
what `from_pretrained` takes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rarft.io import atomic_path, read_json

POINTER_FILE = "rarft_model.json"

# Qwen3's special tokens. <think> and </think> are ordinary added tokens in Qwen3 (not "special"),
# so `skip_special_tokens=True` keeps them in decoded text, as with the real tokenizer.
ENDOFTEXT, IM_START, IM_END, THINK, END_THINK = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"
# Qwen2/Qwen3's pre-tokenisation pattern: digits are split one by one, which is what lets a tiny
# model learn arithmetic digit by digit instead of memorising multi-digit tokens.
QWEN_PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def world_texts(items: list[dict]) -> list[str]:
    """The texts a tiny policy's tokenizer is trained on: problems, traces and the prompt template."""
    from rarft.prompts import build_prompt, prompt_text

    texts = [prompt_text(build_prompt("", [{"problem": "x", "trace": "y"}]))]
    for item in items:
        texts.append(item["problem"])
        if item.get("trace"):
            texts.append(item["trace"])
    return texts


def build_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on ``texts``, with Qwen3's special tokens and chat template.

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
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_PATTERN), behavior="isolated"),
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


def build_tiny_policy(texts: list[str], tiny_cfg: dict, out_dir: str | os.PathLike, seed: int) -> Path:
    """Train a tokenizer on ``texts`` and save it with a randomly initialised Qwen3 to ``out_dir``.

    Deterministic for a fixed ``seed`` (same tokenizer, same weights). Written atomically.
    """
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer(texts, int(tiny_cfg["vocab_size"]))
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
