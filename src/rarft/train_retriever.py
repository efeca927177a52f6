"""Train the reasoning-aware retriever on relevance labels (stage `train-retriever`, rule train_retriever).

The paper's stage 2: a sentence-transformers bi-encoder fine-tuned with contrastive
InfoNCE (`MultipleNegativesRankingLoss`, scale = 1 / temperature, in-batch negatives) on
(query problem, positive corpus document) pairs, where a document is problem + trace
(`rarft.retrieval.doc_text`). A seeded share of the labelled QUERIES is held out; a
`RerankingEvaluator` scores, each epoch, how well the model ranks each held-out query's labelled candidates,
and the epoch with the best recall@1 among them is kept (the paper's criterion; `load_best_model_at_end`,
`HOLDOUT_METRIC`). With `retriever.train.loss: listwise` the
graded scores (the `gain` labeler's P(correct|q,c) - P(correct|q)) are distilled listwise instead
(`DistillKLDivLoss`: KL between the softmax of the labels and of the model's similarities).
`rarft.evaluate_retrievers` compares the trained retrievers with the others on the held-out queries.

On several GPUs the rules launch one data-parallel process per GPU of `resources.train_retriever`
(`accelerate launch`, rarft.launch): `retriever.train.batch_size` is the global batch, split over the
processes, whose in-batch negatives are gathered across them (`retriever.train.gather_across_devices`,
the paper's setting); the main process alone writes the model and its summary.

Multi-vector late interaction (Reason-ModernColBERT, the paper's main retriever): `--kind multi_vector`
fine-tunes `retriever.colbert.base_model` with sentence-transformers 6's `MultiVectorEncoderTrainer` and
its multi-vector InfoNCE (MaxSim scores, same recipe and held-out split) into the `finetuned_colbert`
retriever; `rarft.retrieval.load_colbert` reads it (and PyLate checkpoints) with `MultiVectorEncoder`. No PyLate: its
pins (sentence-transformers 5.3, transformers <= 5.3) cannot share an environment with vLLM.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import time
from pathlib import Path
from typing import Sequence

from rarft.arms import TRAINED_RETRIEVERS
from rarft.config import ConfigError, add_config_argument, load_config, trainer_config
from rarft.io import DataError, atomic_path, write_json
from rarft.retrieval import doc_text, load_items, query_prompt, resolve_device, resolve_model_path

# The best-epoch criterion (`holdout_evaluator`, named "holdout"; the trainer logs it with "eval_"): recall@1 of
# the held-out queries among their labelled candidates, as the paper keeps its checkpoint, with ties broken by
# MAP. recall@1 moves in steps of 1/n over n held-out queries, so on a small held-out set two epochs often tie;
# MAP (the whole candidate ranking) then decides, instead of the trainer's silent "the earlier epoch wins".
HOLDOUT_METRIC = "eval_holdout_recall@1_then_map"


# ---------------------------------------------------------------- labels
def load_labels(path: str | Path) -> list[dict]:
    """A labeler's file through rarft.contracts (one rule for label rows; errors name file, row, key)."""
    from rarft.contracts import read_labels

    return read_labels(path)


def positives(labels: Sequence[dict], query_ids: set[str] | None = None) -> dict[str, set[str]]:
    """query id -> the set of context ids labelled relevant."""
    out: dict[str, set[str]] = {}
    for r in labels:
        if r["label"] and (query_ids is None or r["query_id"] in query_ids):
            out.setdefault(r["query_id"], set()).add(r["context_id"])
    return out


def holdout_samples(labels: Sequence[dict], holdout_ids: Sequence[str], queries: dict[str, dict],
                    corpus: dict[str, dict], query_prefix: str | None) -> list[dict]:
    """The held-out queries with their labelled candidates, as reranking samples: documents labelled
    relevant (``positive``) and labelled not (``negative``); queries lacking either are left out.

    Labels cover only each query's sampled candidates (labels.candidates_per_query), so the model is scored
    on ranking those. Over the whole corpus, unlabelled relevant items count as misses: recall@1 there was 0
    at every epoch on the world's gain labels, and the best-epoch choice had nothing to go by."""
    by_query: dict[str, dict[str, list[str]]] = {}
    for q, judged in labelled_candidates(labels, set(holdout_ids)).items():
        for c, relevant in judged.items():
            if c in corpus and q in queries:
                side = "positive" if relevant else "negative"
                by_query.setdefault(q, {"positive": [], "negative": []})[side].append(doc_text(corpus[c]))
    return [{"query": (query_prefix or "") + queries[q]["problem"], **docs} for q, docs in sorted(by_query.items())
            if docs["positive"] and docs["negative"]]


def labelled_candidates(labels: Sequence[dict], query_ids: set[str]) -> dict[str, dict[str, bool]]:
    """query id -> {context id: labelled relevant?} for the labelled (non-null) candidates of ``query_ids``: what
    checkpoint selection (`holdout_samples`) and the retriever table (rarft.evaluate_retrievers) rank."""
    out: dict[str, dict[str, bool]] = {}
    for r in labels:
        if r["query_id"] in query_ids and r["label"] is not None:
            out.setdefault(r["query_id"], {})[r["context_id"]] = bool(r["label"])
    return out


def split_holdout(query_ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of QUERIES (not pairs), so no held-out query is seen in training."""
    ids = sorted(set(query_ids))
    random.Random(seed).shuffle(ids)
    n_hold = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    return sorted(ids[n_hold:]), sorted(ids[:n_hold])


# ---------------------------------------------------------------- training
def training_pairs(labels: Sequence[dict], train_ids: set[str], queries: dict[str, dict],
                   corpus: dict[str, dict], path: str = "labels") -> dict[str, list]:
    anchors, docs = [], []
    for r in labels:
        if r["label"] and r["query_id"] in train_ids:
            if r["query_id"] not in queries or r["context_id"] not in corpus:
                raise DataError(f"{path}: label ({r['query_id']!r}, {r['context_id']!r}) names an "
                                "unknown training query or corpus item")
            anchors.append(queries[r["query_id"]]["problem"])
            docs.append(doc_text(corpus[r["context_id"]]))
    return {"anchor": anchors, "positive": docs}


def training_lists(labels: Sequence[dict], train_ids: set[str], queries: dict[str, dict],
                   corpus: dict[str, dict], seed: int) -> dict[str, list]:
    """(query, doc_1..doc_n) rows with their graded scores, n = the smallest list size (>= 2)."""
    lists: dict[str, list[tuple[str, float]]] = {}
    for r in labels:
        if r["query_id"] in train_ids and r.get("score") is not None and r["context_id"] in corpus:
            lists.setdefault(r["query_id"], []).append((r["context_id"], float(r["score"])))
    lists = {q: v for q, v in lists.items() if len(v) >= 2 and q in queries}
    if not lists:
        raise DataError("listwise loss needs labels with a numeric `score` and >= 2 candidates per query")
    n = min(len(v) for v in lists.values())
    rng = random.Random(seed)
    cols: dict[str, list] = {"anchor": [], **{f"doc_{i}": [] for i in range(n)}, "label": []}
    for q, cands in sorted(lists.items()):
        cands = rng.sample(cands, n)
        cols["anchor"].append(queries[q]["problem"])
        for i, (c, _) in enumerate(cands):
            cols[f"doc_{i}"].append(doc_text(corpus[c]))
        cols["label"].append([s for _, s in cands])
    return cols


def holdout_evaluator(stack: dict, samples: list[dict]):
    """The sentence-transformers reranking evaluator of ``stack``'s kind on the held-out samples, at k = 1.

    sentence-transformers 6.2's RerankingEvaluator reports MAP, MRR@k and NDCG@k only, no accuracy@1 or
    recall@1. At k = 1 its MRR@1 is exactly recall@1 among the labelled candidates (1 if the top-ranked one
    is labelled relevant, else 0, averaged over the held-out queries that have a relevant and an irrelevant
    candidate). This subclass adds it as `<name>_recall@1`, and the selection key `<name>_recall@1_then_map`
    = recall@1 + MAP / (n + 1): MAP / (n + 1) < 1/n, the smallest step of recall@1 over n queries, so the key
    orders epochs by recall@1 and only ties by MAP."""
    base = stack["evaluator"]

    class HoldoutEvaluator(base):
        def __call__(self, model, *args, **kwargs) -> dict[str, float]:
            metrics = super().__call__(model, *args, **kwargs)
            recall, mean_ap = metrics[f"{self.name}_mrr@1"], metrics[f"{self.name}_map"]
            metrics[f"{self.name}_recall@1"] = recall
            metrics[f"{self.name}_recall@1_then_map"] = recall + mean_ap / (len(self.samples) + 1)
            return metrics

    return HoldoutEvaluator(samples, at_k=1, name="holdout", write_csv=False, batch_size=64)


def loss_temperature(tc: dict, kind: str) -> float:
    """The softmax temperature on the model's similarities: `retriever.train.temperature` for single vectors
    (cosine in [-1, 1]), `retriever.train.multi_vector_temperature` for ColBERT's MaxSim sums (null = the
    former; params.yaml says why they differ). The InfoNCE scale is its inverse; listwise, the student's."""
    if kind == "multi_vector" and tc["multi_vector_temperature"] is not None:
        return float(tc["multi_vector_temperature"])
    return float(tc["temperature"])


def _stack(kind: str) -> dict:
    """The sentence-transformers 6 classes of one kind of retriever.

    single_vector: SentenceTransformer (one pooled vector, cosine); multi_vector: MultiVectorEncoder (one
    vector per token, MaxSim late interaction: the paper's Reason-ModernColBERT), trained with the
    multi-vector trainer and losses that ship in sentence-transformers 6.2 (no PyLate needed)."""
    if kind == "single_vector":
        from sentence_transformers import (
            SentenceTransformer,
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
        )
        from sentence_transformers.sentence_transformer.evaluation import RerankingEvaluator
        from sentence_transformers.sentence_transformer.losses import (
            CachedMultipleNegativesRankingLoss,
            DistillKLDivLoss,
            MultipleNegativesRankingLoss,
        )
        from sentence_transformers.util import pairwise_cos_sim

        return dict(model=SentenceTransformer, trainer=SentenceTransformerTrainer,
                    args=SentenceTransformerTrainingArguments, evaluator=RerankingEvaluator,
                    mnrl=MultipleNegativesRankingLoss, cached_mnrl=CachedMultipleNegativesRankingLoss,
                    distill=lambda model, t, tt: DistillKLDivLoss(model, similarity_fct=pairwise_cos_sim,
                                                                  student_temperature=t, teacher_temperature=tt))
    if kind == "multi_vector":
        from sentence_transformers import MultiVectorEncoder
        from sentence_transformers.multi_vector_encoder import (
            MultiVectorEncoderTrainer,
            MultiVectorEncoderTrainingArguments,
        )
        from sentence_transformers.multi_vector_encoder.evaluation.reranking import MultiVectorRerankingEvaluator
        from sentence_transformers.multi_vector_encoder.losses import (
            CachedMultiVectorMultipleNegativesRankingLoss,
            MultiVectorDistillKLDivLoss,
            MultiVectorMultipleNegativesRankingLoss,
        )

        return dict(model=MultiVectorEncoder, trainer=MultiVectorEncoderTrainer,
                    args=MultiVectorEncoderTrainingArguments, evaluator=MultiVectorRerankingEvaluator,
                    mnrl=MultiVectorMultipleNegativesRankingLoss,
                    cached_mnrl=CachedMultiVectorMultipleNegativesRankingLoss,
                    distill=lambda model, t, tt: MultiVectorDistillKLDivLoss(model, student_temperature=t,
                                                                             teacher_temperature=tt))
    raise ConfigError(f"retriever kind {kind!r}: one of single_vector, multi_vector")


def base_model_of(config: dict, kind: str) -> str:
    """The checkpoint a kind of retriever starts from (retriever.base_model / retriever.colbert.base_model)."""
    if kind == "multi_vector":
        return config["retriever"]["colbert"]["base_model"]
    return config["retriever"]["base_model"]


def make_loss(stack: dict, model, tc: dict, loss_name: str, temperature: float):
    """InfoNCE at scale 1/temperature with in-batch negatives, or the listwise distillation.

    Memory at the paper's batch (128 pairs x 4B parameters or long ColBERT documents) is bounded by
    `retriever.train.mini_batch_size`: the cached (GradCache) loss embeds that many rows at a time with
    no gradient, then back-propagates chunk by chunk; the loss equals the uncached one. null = one
    forward over the whole batch. `gather_across_devices` shares in-batch negatives across DDP
    processes (the paper: "in-batch negatives gathered across GPUs"); a no-op in one process."""
    if loss_name == "listwise":
        # KL between softmax(labels / teacher_t) and softmax(similarity / temperature): graded, listwise
        return stack["distill"](model, temperature, float(tc["teacher_temperature"]))
    gather = bool(tc["gather_across_devices"])
    mini = tc["mini_batch_size"]
    if mini:
        return stack["cached_mnrl"](model, scale=1.0 / temperature, mini_batch_size=int(mini),
                                    gather_across_devices=gather)
    return stack["mnrl"](model, scale=1.0 / temperature, gather_across_devices=gather)


def training_args(cls, config: dict, output_dir: str, device: str, query_prompt: str | None, select_best: bool,
                  metric: str):
    """SentenceTransformerTrainingArguments (single- or multi-vector ``cls``): `retriever.train.trainer` verbatim,
    plus what rarft decides: where, the seed, the device (bf16 off on the CPU), the per-device share of the
    global `retriever.train.batch_size`, the query prompt, and best-checkpoint selection on the held-out labels."""
    tc = config["retriever"]["train"]
    seed = int(config["seed"])
    decided = dict(output_dir=output_dir, seed=seed, data_seed=seed, use_cpu=device == "cpu",
                   per_device_train_batch_size=per_device_batch(int(tc["batch_size"]), device),
                   prompts={"anchor": query_prompt} if query_prompt else None,
                   load_best_model_at_end=select_best, metric_for_best_model=metric, greater_is_better=True)
    # no held-out query with both a relevant and an irrelevant labelled candidate: nothing to score an epoch by
    block = tc["trainer"] if select_best else {**tc["trainer"], "eval_strategy": "no"}
    return trainer_config(cls, block, "retriever.train.trainer", decided)


def per_device_batch(batch_size: int, device: str) -> int:
    """`retriever.train.batch_size` is the GLOBAL batch (the paper: 128 pairs, in-batch negatives across GPUs).

    transformers multiplies the per-device batch by the devices: the DDP processes (WORLD_SIZE, under
    torchrun / accelerate launch) or, in one process that sees several GPUs, nn.DataParallel's GPU count."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "0") or 0)
    if not world:
        world = torch.cuda.device_count() if device == "cuda" else 1
    world = max(1, world)
    if batch_size % world:
        raise ConfigError(f"retriever.train.batch_size {batch_size} does not split over {world} devices")
    return batch_size // world


def checkpoint_dir(out_dir: Path) -> Path:
    """The trainer's epoch checkpoints, beside ``out_dir`` and removed after training. One path for every
    process: the main process saves there and all of them load the best epoch from it at the end."""
    return out_dir.with_name(f".{out_dir.name}.ckpt")


def holdout_score(evaluator, model) -> dict | None:
    """{recall@1, map} of the held-out queries among their labelled candidates, computed as the trainer does
    each epoch: under a distributed launch every process encodes a share (sentence-transformers' distributed
    evaluation) and the main process scores; None on the other processes. One process: a plain evaluator call."""
    from sentence_transformers.util.distributed import distributed_evaluation

    with distributed_evaluation(model) as scores_here:
        if not scores_here:
            return None
        metrics = evaluator(model)
        return {"recall@1": float(metrics["holdout_recall@1"]), "map": float(metrics["holdout_map"])}


def train_retriever(config: dict, labels: Sequence[dict], train: Sequence[dict], corpus: Sequence[dict],
                    out_dir: str | Path, labels_path: str = "labels", kind: str = "single_vector") -> dict:
    """Fine-tune the base model of ``kind`` on the labels; save the best epoch to ``out_dir``; return a summary.

    One process, or one of several data-parallel ones (torchrun / accelerate launch: the rule's launcher when
    its job has several GPUs, rarft.launch): every process trains on its share of each global batch
    (`per_device_batch`) and gathers the others' in-batch negatives (`gather_across_devices`); the main process
    alone writes ``out_dir`` (atomically) and returns the summary, the others return {}."""
    import torch
    from accelerate import PartialState
    from datasets import Dataset

    stack = _stack(kind)

    tc = config["retriever"]["train"]
    seed = int(config["seed"])
    queries = {q["id"]: q for q in train}
    corpus_by_id = {c["id"]: c for c in corpus}
    labelled = [r["query_id"] for r in labels if r["label"] is not None]
    if not labelled:
        raise DataError(f"{labels_path}: no labelled (query, context) pairs")
    train_ids, holdout_ids = split_holdout(labelled, float(tc["holdout_fraction"]), seed)
    train_ids_set = set(train_ids)
    loss_name = tc["loss"]
    temperature = loss_temperature(tc, kind)
    if loss_name == "listwise":
        data = training_lists(labels, train_ids_set, queries, corpus_by_id, seed)
    else:
        data = training_pairs(labels, train_ids_set, queries, corpus_by_id, labels_path)
    n_rows = len(data["anchor"])
    if n_rows < 2:
        raise DataError(f"{labels_path}: only {n_rows} positive pair(s) outside the held-out queries; "
                        "nothing to train on")

    device = resolve_device(config)
    # joins the process group under a distributed launch (gloo on the CPU, NCCL on GPUs); one process otherwise
    state = PartialState(cpu=device == "cpu")
    # each process loads its replica on its own GPU (the trainer would move it there, after a spike on GPU 0)
    load_on = f"cuda:{state.local_process_index}" if device == "cuda" and state.num_processes > 1 else device
    base = base_model_of(config, kind)
    # fp32 parameters and AdamW state (master weights), bf16 autocast on a GPU: transformers 5 would
    # otherwise load a bf16 checkpoint in bf16 and round small updates away (review B2). Under DeepSpeed ZeRO
    # (retriever.train.launcher zero2.yaml, the paper configs: the 4B embedder's fp32 state does not fit 80 GB
    # under DDP, `rarft plan`) DeepSpeed casts the module to bf16 and builds its sharded fp32 master copy and AdamW
    # state from it (the checkpoint's own bf16 values): the updates stay fp32.
    model = stack["model"](resolve_model_path(base), device=load_on, model_kwargs={"dtype": torch.float32})
    loss = make_loss(stack, model, tc, loss_name, temperature)
    # single-vector queries carry the instruction prompt (Qwen3-Embedding); ColBERT models bring their own
    # query/document prefixes in their saved `prompts`, which its encode_query/encode_document apply
    qp = query_prompt(config) if kind == "single_vector" else None

    held = holdout_samples(labels, holdout_ids, queries, corpus_by_id, qp)
    evaluator = holdout_evaluator(stack, held) if held else None
    metric = HOLDOUT_METRIC
    out_dir = Path(out_dir)
    ckpt = checkpoint_dir(out_dir)
    main = state.is_main_process
    if main:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(ckpt, ignore_errors=True)  # a killed earlier run's checkpoints
    state.wait_for_everyone()
    t0 = time.time()
    try:
        args = training_args(stack["args"], config, str(ckpt), device, qp, bool(held), metric)
        trainer = stack["trainer"](model=model, args=args, train_dataset=Dataset.from_dict(data),
                                   loss=loss, evaluator=evaluator)
        before = holdout_score(evaluator, model) if held else None
        trainer.train()  # ends with every process on the best epoch (load_best_model_at_end)
        after = holdout_score(evaluator, model) if held else None
        processes = trainer.accelerator.num_processes
        trainer.accelerator.wait_for_everyone()
        if not main:
            return {}
        history = [h for h in trainer.state.log_history if metric in h]
        with atomic_path(out_dir) as tmp:
            model.save(str(tmp))
            write_json(tmp / "holdout.json", {"query_ids": holdout_ids, "train_query_ids": train_ids,
                                              "seed": seed, "labels": str(labels_path)})
            summary = {"kind": kind, "base_model": base, "loss": loss_name,
                       # what the loss object holds (InfoNCE: 1 / its scale), not only what was asked
                       "temperature": 1.0 / loss.scale if hasattr(loss, "scale") else temperature, "rows": n_rows,
                       "mini_batch_size": tc["mini_batch_size"], "query_prompt": qp,
                       "processes": processes, "batch_size": int(tc["batch_size"]),
                       "per_device_batch_size": args.per_device_train_batch_size,
                       "gather_across_devices": bool(tc["gather_across_devices"]),
                       "steps": trainer.state.global_step,
                       "train_queries": len(train_ids), "holdout_queries": len(holdout_ids),
                       "holdout_queries_ranked": len(held),
                       "holdout_metric": "recall@1 among the labelled candidates (ties: MAP)",
                       "holdout_before": before, "holdout_best": after,
                       "per_epoch": [{"epoch": h["epoch"], "recall@1": h["eval_holdout_recall@1"],
                                      "map": h["eval_holdout_map"]} for h in history],
                       "device": device, "train_seconds": round(time.time() - t0, 1)}
            write_json(tmp / "training_summary.json", summary)
        return summary
    finally:
        if main:
            shutil.rmtree(ckpt, ignore_errors=True)


def _recall(score: dict | None) -> str:
    return "n/a" if score is None else f"{score['recall@1']:.3f}"


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft train-retriever",
                                description="Fine-tune the retriever on relevance labels.")
    add_config_argument(p)
    p.add_argument("--labels", required=True, help="data/labels/<train_on>.jsonl")
    p.add_argument("--train", required=True, help="data/clean/train.jsonl")
    p.add_argument("--corpus", required=True, help="data/traces/corpus.jsonl")
    p.add_argument("--out", required=True, help="models/retriever/finetuned")
    p.add_argument("--kind", default="single_vector", choices=sorted(set(TRAINED_RETRIEVERS.values())),
                   help="single_vector: retriever.base_model; multi_vector: retriever.colbert.base_model")
    args = p.parse_args(argv)
    config = load_config(args.config)
    summary = train_retriever(config, load_labels(args.labels), load_items(args.train),
                              load_items(args.corpus, ("id", "problem", "trace")), args.out, args.labels,
                              kind=args.kind)
    if summary:  # the main process reports (the others of a distributed launch return {})
        print(f"train-retriever[{args.kind}]: {summary['rows']} {summary['loss']} rows from "
              f"{summary['train_queries']} queries, {summary['processes']} process(es) x "
              f"{summary['per_device_batch_size']} per batch, "
              f"held-out recall@1 among labelled candidates {_recall(summary['holdout_before'])} -> "
              f"{_recall(summary['holdout_best'])} ({summary['holdout_queries_ranked']} queries), "
              f"{summary['train_seconds']}s -> {args.out}")
    return 0


