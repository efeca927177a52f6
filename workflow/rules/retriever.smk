# The reasoning-aware retriever: train on the labels, compare retrievers, write top-k retrievals.
TRAIN_LABELS = expand(rules.label_relevance.output.labels, labeler=config["labels"]["train_on"])
ORACLE_LABELS = expand(rules.label_relevance.output.labels, labeler="oracle") if "oracle" in LABELERS else []


# code: src/rarft/train_retriever.py:train_retriever
rule train_retriever:
    input:
        labels=TRAIN_LABELS,
        train=rules.decontaminate.output.train,
        corpus=rules.build_traces.output.corpus,
    output:
        model=directory("models/retriever/finetuned"),
    params:
        # `accelerate launch` for a multi-GPU train_retriever (rarft.launch.train_command)
        **stage_params("train_retriever", rarft=TRAIN_RETRIEVER_RARFT),
    log:
        "logs/train_retriever.log",
    benchmark:
        "benchmarks/train_retriever.tsv"
    priority: priority("train_retriever")
    conda:
        conda_env_of("train_retriever")
    resources:
        **res("train_retriever"),
    shell:
        "{params.rarft} train-retriever --config {params.configs} --labels {input.labels} --train {input.train}"
        " --corpus {input.corpus} --out {output.model} > {log} 2>&1"


# code: src/rarft/train_retriever.py:train_retriever (kind multi_vector)
rule train_colbert_retriever:
    input:
        labels=TRAIN_LABELS,
        train=rules.decontaminate.output.train,
        corpus=rules.build_traces.output.corpus,
    output:
        model=directory("models/retriever/finetuned_colbert"),
    params:
        **stage_params("train_colbert_retriever", rarft=TRAIN_RETRIEVER_RARFT),
    log:
        "logs/train_colbert_retriever.log",
    benchmark:
        "benchmarks/train_colbert_retriever.tsv"
    priority: priority("train_colbert_retriever")
    conda:
        conda_env_of("train_colbert_retriever")
    resources:
        **res("train_retriever"),
    shell:
        "{params.rarft} train-retriever --kind multi_vector --config {params.configs} --labels {input.labels}"
        " --train {input.train} --corpus {input.corpus} --out {output.model} > {log} 2>&1"


# the fine-tuned multi-vector retriever (Reason-ModernColBERT), when retrieval or the table uses it
COLBERT_MODEL = (
    [rules.train_colbert_retriever.output.model] if "finetuned_colbert" in retrievers_trained(config) else []
)


# code: src/rarft/evaluate_retrievers.py:evaluate_retrievers
rule evaluate_retrievers:
    input:
        labels=TRAIN_LABELS,
        oracle=ORACLE_LABELS,
        colbert=COLBERT_MODEL,
        finetuned=rules.train_retriever.output.model,
        train=rules.decontaminate.output.train,
        corpus=rules.build_traces.output.corpus,
    output:
        table="results/reports/retrievers.md",
        csv="results/reports/retrievers.csv",
    params:
        **stage_params("evaluate_retrievers"),
        oracle=lambda wc, input: f"--oracle-labels {input.oracle}" if input.oracle else "",
        colbert=lambda wc, input: f"--finetuned-colbert {input.colbert}" if input.colbert else "",
    log:
        "logs/evaluate_retrievers.log",
    benchmark:
        "benchmarks/evaluate_retrievers.tsv"
    conda:
        conda_env_of("evaluate_retrievers")
    resources:
        **res("evaluate_retrievers"),
    shell:
        "{params.rarft} evaluate-retrievers --config {params.configs} --labels {input.labels} {params.oracle}"
        " {params.colbert} --finetuned {input.finetuned} --train {input.train} --corpus {input.corpus}"
        " --out-dir results/reports --cache-dir data/retrieval/.cache > {log} 2>&1"


# code: src/rarft/retrieval.py:retrieve
rule retrieve:
    input:
        model=retriever_model,
        train=rules.decontaminate.output.train,
        corpus=rules.build_traces.output.corpus,
        bench=rules.decontaminate.output.bench,
    output:
        retrieval="data/retrieval/{retriever}.jsonl",
    wildcard_constraints:
        retriever="|".join(RETRIEVER_NAMES),
    params:
        **stage_params("retrieve"),
        model=lambda wc, input: f"--model-dir {input.model}" if input.model else "",
    log:
        "logs/retrieve/{retriever}.log",
    benchmark:
        "benchmarks/retrieve/{retriever}.tsv"
    priority: priority("retrieve")
    conda:
        conda_env_of("retrieve")
    resources:
        **res("retrieve"),
    shell:
        "{params.rarft} retrieve --config {params.configs} --retriever {wildcards.retriever} {params.model}"
        " --train {input.train} --corpus {input.corpus} --benchmarks {input.bench}"
        " --out {output.retrieval} > {log} 2>&1"
