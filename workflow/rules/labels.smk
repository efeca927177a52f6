# Gold-relevance labels: candidates, then each labeler (gain / judge / oracle), then their comparison.


# code: src/rarft/candidates.py:sample_candidates
rule sample_candidates:
    input:
        train=rules.decontaminate.output.train,
        corpus=rules.build_traces.output.corpus,
    output:
        candidates="data/labels/candidates.jsonl",
    params:
        **stage_params("sample_candidates"),
    log:
        "logs/sample_candidates.log",
    benchmark:
        "benchmarks/sample_candidates.tsv"
    priority: priority("sample_candidates")
    conda:
        f"{ENVS}/cpu.yaml"
    resources:
        **res("sample_candidates"),
    shell:
        "{params.rarft} sample-candidates --config {params.configs} --train {input.train} --corpus {input.corpus}"
        " --out {output.candidates} > {log} 2>&1"


# code: src/rarft/labels.py:label_relevance
rule label_relevance:
    input:
        train=rules.decontaminate.output.train,
        corpus=rules.build_traces.output.corpus,
        candidates=rules.sample_candidates.output.candidates,
        policy=label_policy,
    output:
        labels="data/labels/{labeler}.jsonl",
    wildcard_constraints:
        labeler="|".join(LABELER_NAMES),
    params:
        **stage_params("label_relevance"),
        policy=lambda wc, input: f"--policy-dir {input.policy}" if input.policy else "",
    log:
        "logs/label_relevance/{labeler}.log",
    benchmark:
        "benchmarks/label_relevance/{labeler}.tsv"
    priority: priority("label_relevance")
    conda:
        conda_env_of("label_relevance")
    resources:
        **res("label_relevance"),
    shell:
        "{params.rarft} label-relevance --config {params.configs} --labeler {wildcards.labeler}"
        " {params.policy} --train {input.train} --corpus {input.corpus}"
        " --candidates {input.candidates} --out {output.labels} > {log} 2>&1"


# code: src/rarft/labels_compare.py:compare_labelers
rule compare_labelers:
    input:
        labels=expand(rules.label_relevance.output.labels, labeler=LABELERS),
        train=rules.decontaminate.output.train,
        corpus=rules.build_traces.output.corpus,
    output:
        table="results/reports/labelers.md",
        csv="results/reports/labelers.csv",
        similarity="results/reports/similarity_vs_gain.csv",
    params:
        **stage_params("compare_labelers"),
    log:
        "logs/compare_labelers.log",
    benchmark:
        "benchmarks/compare_labelers.tsv"
    conda:
        conda_env_of("compare_labelers")
    resources:
        **res("compare_labelers"),
    shell:
        "{params.rarft} compare-labelers --config {params.configs} --labels {input.labels}"
        " --train {input.train} --corpus {input.corpus} --out-dir results/reports > {log} 2>&1"
