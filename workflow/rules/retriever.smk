# The reasoning-aware retriever: train on the labels, compare retrievers, write top-k retrievals.
TRAIN_LABELS = f"data/labels/{config['labels']['train_on']}.jsonl"
ORACLE_LABELS = ["data/labels/oracle.jsonl"] if "oracle" in LABELERS else []
# the fine-tuned multi-vector retriever (Reason-ModernColBERT), when retrieval or the table uses it
COLBERT_MODEL = (["models/retriever/finetuned_colbert"]
                 if "finetuned_colbert" in retrievers_trained(config) else [])


rule train_retriever:
    input:
        labels=TRAIN_LABELS,
        train="data/clean/train.jsonl",
        corpus="data/traces/corpus.jsonl",
    output:
        directory("models/retriever/finetuned"),
    params:
        cfg=section("retriever", "seed"),
    log:
        "logs/train_retriever.log",
    benchmark:
        "benchmarks/train_retriever.tsv"
    priority: priority("train_retriever")
    conda:
        conda_env_of("train_retriever")
    resources:
        gpu=gpus("train_retriever"),
        mem_mb=res("train_retriever", "mem_mb"),
        runtime=res("train_retriever", "runtime"),
    shell:
        "{RARFT} train-retriever --config {CONFIG_FILES} --labels {input.labels} --train {input.train}"
        " --corpus {input.corpus} --out {output} > {log} 2>&1"


rule train_colbert_retriever:
    input:
        labels=TRAIN_LABELS,
        train="data/clean/train.jsonl",
        corpus="data/traces/corpus.jsonl",
    output:
        directory("models/retriever/finetuned_colbert"),
    params:
        cfg=section("retriever", "seed"),
    log:
        "logs/train_colbert_retriever.log",
    benchmark:
        "benchmarks/train_colbert_retriever.tsv"
    priority: priority("train_colbert_retriever")
    conda:
        conda_env_of("train_colbert_retriever")
    resources:
        gpu=gpus("train_retriever"),
        mem_mb=res("train_retriever", "mem_mb"),
        runtime=res("train_retriever", "runtime"),
    shell:
        "{RARFT} train-retriever --kind multi_vector --config {CONFIG_FILES} --labels {input.labels}"
        " --train {input.train} --corpus {input.corpus} --out {output} > {log} 2>&1"


rule evaluate_retrievers:
    input:
        labels=TRAIN_LABELS,
        oracle=ORACLE_LABELS,
        colbert=COLBERT_MODEL,
        finetuned="models/retriever/finetuned",
        train="data/clean/train.jsonl",
        corpus="data/traces/corpus.jsonl",
    output:
        table="results/reports/retrievers.md",
        csv="results/reports/retrievers.csv",
    params:
        cfg=section("retriever", "seed"),
        oracle=lambda wc, input: f"--oracle-labels {input.oracle}" if input.oracle else "",
        colbert=lambda wc, input: f"--finetuned-colbert {input.colbert}" if input.colbert else "",
    log:
        "logs/evaluate_retrievers.log",
    benchmark:
        "benchmarks/evaluate_retrievers.tsv"
    conda:
        conda_env_of("evaluate_retrievers")
    resources:
        gpu=gpus("evaluate_retrievers"),
        mem_mb=res("evaluate_retrievers", "mem_mb"),
        runtime=res("evaluate_retrievers", "runtime"),
    shell:
        "{RARFT} evaluate-retrievers --config {CONFIG_FILES} --labels {input.labels} {params.oracle} {params.colbert}"
        " --finetuned {input.finetuned} --train {input.train} --corpus {input.corpus}"
        " --out-dir results/reports > {log} 2>&1"


def retriever_model(wildcards):
    path = trained_model_dir(wildcards.retriever)
    return [path] if path else []


rule retrieve:
    input:
        model=retriever_model,
        train="data/clean/train.jsonl",
        corpus="data/traces/corpus.jsonl",
        bench=bench_files("clean"),
    output:
        "data/retrieval/{retriever}.jsonl",
    wildcard_constraints:
        retriever="|".join(RETRIEVER_NAMES),
    params:
        cfg=section("retriever", "seed"),
        model=lambda wc, input: f"--model-dir {input.model}" if input.model else "",
    log:
        "logs/retrieve/{retriever}.log",
    benchmark:
        "benchmarks/retrieve/{retriever}.tsv"
    priority: priority("retrieve")
    conda:
        conda_env_of("retrieve")
    resources:
        gpu=gpus("retrieve"),
        mem_mb=res("retrieve", "mem_mb"),
        runtime=res("retrieve", "runtime"),
    shell:
        "{RARFT} retrieve --config {CONFIG_FILES} --retriever {wildcards.retriever} {params.model}"
        " --train {input.train} --corpus {input.corpus} --benchmarks {input.bench}"
        " --out {output} > {log} 2>&1"
