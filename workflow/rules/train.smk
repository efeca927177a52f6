# Every arm of the paper's grid through one TRL entry point (GRPO, RA-RFT, SFT, RA-SFT, RLOO, DAPO, ...).


def arm_train(wildcards):
    return SFT_TRAIN if trainer_of(wildcards.arm) == "sft" else "data/clean/train.jsonl"


def arm_retrieval(wildcards):
    r = retriever_of(wildcards.arm, config)
    return [retrieval_file(r)] if r else []


rule train_policy:
    input:
        base="models/policy/base",
        train=arm_train,
        corpus="data/traces/corpus.jsonl",
        bench=bench_files("clean"),
        retrieval=arm_retrieval,
    output:
        model=directory("models/policy/{arm}"),
        curve="runs/train/{arm}/curve.jsonl",
    wildcard_constraints:
        arm="|".join(ARMS),
    params:
        cfg=section("rl", "generation", "evaluation", "seed"),
        retrieval=lambda wc, input: f"--retrieval {input.retrieval}" if input.retrieval else "",
    log:
        "logs/train_policy/{arm}.log",
    benchmark:
        "benchmarks/train_policy/{arm}.tsv"
    priority: priority("train_policy")
    conda:
        conda_env_of("train_policy")
    resources:
        gpu=gpus("train_policy"),
        mem_mb=res("train_policy", "mem_mb"),
        runtime=res("train_policy", "runtime"),
    shell:
        "{TRAIN_RARFT} train-policy --config {CONFIG_FILES} --arm {wildcards.arm} --base {input.base}"
        " --train {input.train} --corpus {input.corpus} {params.retrieval} --benchmarks {input.bench}"
        " --out {output.model} --run-dir runs/train/{wildcards.arm} > {log} 2>&1"
