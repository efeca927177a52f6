# Data preparation -> decontamination -> corpus traces.


# code: src/rarft/data.py:prepare_data
rule prepare_data:
    output:
        train="data/prepared/train.jsonl",
        corpus="data/prepared/corpus.jsonl",
        bench=bench_files("prepared"),
        report="data/prepared/report.json",
        report_md="results/reports/data_report.md",
    params:
        **stage_params("prepare_data"),
    log:
        "logs/prepare_data.log",
    benchmark:
        "benchmarks/prepare_data.tsv"
    conda:
        f"{ENVS}/cpu.yaml"
    resources:
        **res("prepare_data"),
    shell:
        "{params.rarft} prepare-data --config {params.configs} --out-dir data/prepared"
        " --report-md {output.report_md} > {log} 2>&1"


# code: src/rarft/decontam.py:decontaminate
rule decontaminate:
    input:
        train=rules.prepare_data.output.train,
        corpus=rules.prepare_data.output.corpus,
        bench=rules.prepare_data.output.bench,
    output:
        train="data/clean/train.jsonl",
        corpus="data/clean/corpus.jsonl",
        bench=bench_files("clean"),
        report="results/reports/decontamination.json",
        report_md="results/reports/decontamination.md",
    params:
        **stage_params("decontaminate"),
    log:
        "logs/decontaminate.log",
    benchmark:
        "benchmarks/decontaminate.tsv"
    conda:
        f"{ENVS}/cpu.yaml"
    resources:
        **res("decontaminate"),
    shell:
        "{params.rarft} decontaminate --config {params.configs} --in-dir data/prepared --out-dir data/clean"
        " --report results/reports/decontamination > {log} 2>&1"


# SFT / RA-SFT on real data imitate teacher traces of the training queries: the same job writes them
# (rarft.traces.train_traces_needed); the world's queries carry their own.
TRAIN_TRACE_IO = (
    {"train": rules.decontaminate.output.train, "solutions": rules.prepare_data.output.corpus}
    if train_traces_needed(config)
    else {}
)


# code: src/rarft/traces.py:build_traces
rule build_traces:
    input:
        corpus=rules.decontaminate.output.corpus,
        **TRAIN_TRACE_IO,
    output:
        corpus="data/traces/corpus.jsonl",
        report="results/reports/traces.json",
        **({"train": "data/traces/train.jsonl"} if TRAIN_TRACE_IO else {}),
    params:
        **stage_params("build_traces"),
        train=lambda wc, input, output: (
            f"--train {input.train} --solutions {input.solutions} --train-out {output.train}" if TRAIN_TRACE_IO else ""
        ),
    log:
        "logs/build_traces.log",
    benchmark:
        "benchmarks/build_traces.tsv"
    conda:
        conda_env_of("build_traces")
    resources:
        **res("build_traces"),
    shell:
        "{params.rarft} build-traces --config {params.configs} --corpus {input.corpus} --out {output.corpus}"
        " --report {output.report} {params.train} > {log} 2>&1"
