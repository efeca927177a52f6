# Paper tables and figures, the diversity analysis and results/README.md.


rule analyze:
    input:
        evals=EVALS,
        samples=[e.replace("summary.json", "samples.jsonl") for e in EVALS],
        curves=expand("runs/train/{arm}/curve.jsonl", arm=[a for a in ("grpo", "rarft") if a in ARMS]),
        retrieval=[retrieval_file(r) for r in RETRIEVERS],
        retrievers="results/reports/retrievers.csv",
        labelers="results/reports/labelers.csv",
        similarity="results/reports/similarity_vs_gain.csv",
        corpus="data/traces/corpus.jsonl",
        bench=bench_files("clean"),
    output:
        readme="results/README.md",
        metrics="results/metrics.json",
        tables=report(directory("results/tables"), patterns=["{name}.md"], category="Tables"),
        figures=report(directory("results/figures"), patterns=["{name}.png"], category="Figures"),
        plots=directory("results/plots"),
        manifest="runs/analyze/manifest.json",
    params:
        cfg=section("analysis", "evaluation", "rl", "data", "policy", "retriever", "labels", "seed"),
    log:
        "logs/analyze.log",
    benchmark:
        "benchmarks/analyze.tsv"
    conda:
        conda_env_of("analyze")
    resources:
        gpu=gpus("analyze"),
        mem_mb=res("analyze", "mem_mb"),
        runtime=res("analyze", "runtime"),
    shell:
        "{RARFT} analyze --config {CONFIG_FILES} --runs runs --data data --reports results/reports"
        " --out results --manifest {output.manifest} > {log} 2>&1"
