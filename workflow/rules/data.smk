# Data preparation -> decontamination -> corpus traces.


rule prepare_data:
    output:
        train="data/prepared/train.jsonl",
        corpus="data/prepared/corpus.jsonl",
        bench=bench_files("prepared"),
        report="data/prepared/report.json",
        report_md="results/reports/data_report.md",
    params:
        cfg=section("data"),
    log:
        "logs/prepare_data.log",
    benchmark:
        "benchmarks/prepare_data.tsv"
    conda:
        f"{ENVS}/cpu.yaml"
    resources:
        gpu=gpus("prepare_data"),
        mem_mb=res("prepare_data", "mem_mb"),
        runtime=res("prepare_data", "runtime"),
    shell:
        "{RARFT} prepare-data --config {CONFIG_FILES} --out-dir data/prepared"
        " --report-md {output.report_md} > {log} 2>&1"


rule decontaminate:
    input:
        train="data/prepared/train.jsonl",
        corpus="data/prepared/corpus.jsonl",
        bench=bench_files("prepared"),
    output:
        train="data/clean/train.jsonl",
        corpus="data/clean/corpus.jsonl",
        bench=bench_files("clean"),
        report="results/reports/decontamination.json",
        report_md="results/reports/decontamination.md",
    params:
        cfg=section("data"),
    log:
        "logs/decontaminate.log",
    benchmark:
        "benchmarks/decontaminate.tsv"
    conda:
        f"{ENVS}/cpu.yaml"
    resources:
        gpu=gpus("decontaminate"),
        mem_mb=res("decontaminate", "mem_mb"),
        runtime=res("decontaminate", "runtime"),
    shell:
        "{RARFT} decontaminate --config {CONFIG_FILES} --in-dir data/prepared --out-dir data/clean"
        " --report results/reports/decontamination > {log} 2>&1"


# SFT / RA-SFT on real data imitate teacher traces of the training queries: the same job writes them
# (rarft.traces.train_traces_needed); the world's queries carry their own.
TRAIN_TRACE_IO = (
    {"train": "data/clean/train.jsonl", "solutions": "data/prepared/corpus.jsonl"} if train_traces_needed(config) else {}
)


rule build_traces:
    input:
        corpus="data/clean/corpus.jsonl",
        **TRAIN_TRACE_IO,
    output:
        corpus="data/traces/corpus.jsonl",
        report="results/reports/traces.json",
        **({"train": SFT_TRAIN} if TRAIN_TRACE_IO else {}),
    params:
        cfg=section("traces"),
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
        gpu=gpus("build_traces"),
        mem_mb=res("build_traces", "mem_mb"),
        runtime=res("build_traces", "runtime"),
    shell:
        "{RARFT} build-traces --config {CONFIG_FILES} --corpus {input.corpus} --out {output.corpus}"
        " --report {output.report} {params.train} > {log} 2>&1"
