# Gold-relevance labels: candidates, then each labeler (gain / judge / oracle), then their comparison.
from rarft.labels import LABELERS as LABELER_NAMES  # the one list of labeler names


rule sample_candidates:
    input:
        train="data/clean/train.jsonl",
        corpus="data/traces/corpus.jsonl",
    output:
        "data/labels/candidates.jsonl",
    params:
        cfg=section("labels", "seed"),
    log:
        "logs/sample_candidates.log",
    benchmark:
        "benchmarks/sample_candidates.tsv"
    priority: priority("sample_candidates")
    conda:
        f"{ENVS}/cpu.yaml"
    resources:
        gpu=gpus("sample_candidates"),
        mem_mb=res("sample_candidates", "mem_mb"),
        runtime=res("sample_candidates", "runtime"),
    shell:
        "{RARFT} sample-candidates --config {CONFIG_FILES} --train {input.train} --corpus {input.corpus}"
        " --out {output} > {log} 2>&1"


rule label_relevance:
    input:
        train="data/clean/train.jsonl",
        corpus="data/traces/corpus.jsonl",
        candidates="data/labels/candidates.jsonl",
        # the oracle reads hidden strategy labels; only gain and judge need the policy/endpoint
        policy=lambda wc: [] if wc.labeler == "oracle" else ["models/policy/base"],
    output:
        "data/labels/{labeler}.jsonl",
    wildcard_constraints:
        labeler="|".join(LABELER_NAMES),
    params:
        cfg=section("labels", "generation", "seed"),
        policy=lambda wc, input: f"--policy-dir {input.policy}" if input.policy else "",
    log:
        "logs/label_relevance/{labeler}.log",
    benchmark:
        "benchmarks/label_relevance/{labeler}.tsv"
    priority: priority("label_relevance")
    conda:
        conda_env_of("label_relevance")
    resources:
        gpu=gpus("label_relevance"),
        mem_mb=res("label_relevance", "mem_mb"),
        runtime=res("label_relevance", "runtime"),
    shell:
        "{RARFT} label-relevance --config {CONFIG_FILES} --labeler {wildcards.labeler}"
        " {params.policy} --train {input.train} --corpus {input.corpus}"
        " --candidates {input.candidates} --out {output} > {log} 2>&1"


rule compare_labelers:
    input:
        labels=expand("data/labels/{labeler}.jsonl", labeler=LABELERS),
        train="data/clean/train.jsonl",
        corpus="data/traces/corpus.jsonl",
    output:
        table="results/reports/labelers.md",
        csv="results/reports/labelers.csv",
        similarity="results/reports/similarity_vs_gain.csv",
    params:
        cfg=section("labels", "retriever"),
    log:
        "logs/compare_labelers.log",
    benchmark:
        "benchmarks/compare_labelers.tsv"
    conda:
        conda_env_of("compare_labelers")
    resources:
        gpu=gpus("compare_labelers"),
        mem_mb=res("compare_labelers", "mem_mb"),
        runtime=res("compare_labelers", "runtime"),
    shell:
        "{RARFT} compare-labelers --config {CONFIG_FILES} --labels {input.labels}"
        " --train {input.train} --corpus {input.corpus} --out-dir results/reports > {log} 2>&1"
