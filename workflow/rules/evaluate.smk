# average@k of every policy on every benchmark, per retrieval setting (none | top1-R | topk-R).


# code: src/rarft/evaluate.py:evaluate_policy
rule evaluate:
    input:
        # base (rules.init_policy) or an arm (rules.train_policy)
        policy="models/policy/{policy}",
        bench=rules.decontaminate.output.bench,
        corpus=rules.build_traces.output.corpus,
        retrieval=eval_retrieval,
    output:
        summary="runs/eval/{policy}/{setting}/summary.json",
        samples="runs/eval/{policy}/{setting}/samples.jsonl",
    wildcard_constraints:
        policy="|".join(POLICIES),
        setting=SETTING_PATTERN,
    params:
        **stage_params("evaluate"),
        retrieval=lambda wc, input: f"--retrieval {input.retrieval}" if input.retrieval else "",
    log:
        "logs/evaluate/{policy}/{setting}.log",
    benchmark:
        "benchmarks/evaluate/{policy}/{setting}.tsv"
    priority: priority("evaluate")
    conda:
        conda_env_of("evaluate")
    resources:
        **res("evaluate"),
    shell:
        "{params.rarft} evaluate --config {params.configs} --policy-dir {input.policy}"
        " --policy-name {wildcards.policy} --setting {wildcards.setting} --benchmarks {input.bench}"
        " --corpus {input.corpus} {params.retrieval} --out runs/eval/{wildcards.policy}/{wildcards.setting}"
        " > {log} 2>&1"
