# average@k of every policy on every benchmark, per retrieval setting (none | top1-R | topk-R).


def eval_retrieval(wildcards):
    r = setting_retriever(wildcards.setting)
    return [retrieval_file(r)] if r else []


rule evaluate:
    input:
        policy="models/policy/{policy}",
        bench=bench_files("clean"),
        corpus="data/traces/corpus.jsonl",
        retrieval=eval_retrieval,
    output:
        summary="runs/eval/{policy}/{setting}/summary.json",
        samples="runs/eval/{policy}/{setting}/samples.jsonl",
    wildcard_constraints:
        policy="|".join(POLICIES),
        setting=r"none|top1-\w+|topk-\w+",
    params:
        cfg=section("evaluation", "generation", "analysis", "seed"),
        retrieval=lambda wc, input: f"--retrieval {input.retrieval}" if input.retrieval else "",
    log:
        "logs/evaluate/{policy}/{setting}.log",
    benchmark:
        "benchmarks/evaluate/{policy}/{setting}.tsv"
    priority: priority("evaluate")
    conda:
        conda_env_of("evaluate")
    resources:
        gpu=gpus("evaluate"),
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    shell:
        "{RARFT} evaluate --config {CONFIG_FILES} --policy-dir {input.policy} --policy-name {wildcards.policy}"
        " --setting {wildcards.setting} --benchmarks {input.bench} --corpus {input.corpus}"
        " {params.retrieval} --out runs/eval/{wildcards.policy}/{wildcards.setting} > {log} 2>&1"
