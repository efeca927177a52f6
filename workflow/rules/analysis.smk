# Paper tables and figures, the diversity analysis and results/README.md.


# code: src/rarft/analysis.py:analyze
rule analyze:
    input:
        evals=EVALS,
        samples=[e.replace("summary.json", "samples.jsonl") for e in EVALS],
        curves=expand(rules.train_policy.output.curve, arm=[a for a in CURVE_ARMS if a in ARMS]),
        retrieval=[retrieval_file(r) for r in RETRIEVERS],
        retrievers=rules.evaluate_retrievers.output.csv,
        labelers=rules.compare_labelers.output.csv,
        similarity=rules.compare_labelers.output.similarity,
        corpus=rules.build_traces.output.corpus,
        bench=rules.decontaminate.output.bench,
    output:
        readme="results/README.md",
        metrics="results/metrics.json",
        metrics_full="results/metrics_full.json",
        tables=report(directory("results/tables"), patterns=["{name}.md"], category="Tables"),
        figures=report(directory("results/figures"), patterns=["{name}.png"], category="Figures"),
        # files, not directory(): Snakemake's marker in an output folder would be read by `dvc plots show` as a plot
        plots=["results/plots/curves.csv", "results/plots/context_accuracy.csv"],
        manifest="runs/analyze/manifest.json",
    params:
        **stage_params("analyze"),
    log:
        "logs/analyze.log",
    benchmark:
        "benchmarks/analyze.tsv"
    conda:
        conda_env_of("analyze")
    resources:
        **res("analyze"),
    shell:
        "{params.rarft} analyze --config {params.configs} --runs runs --data data --reports results/reports"
        " --out results --manifest {output.manifest} > {log} 2>&1"
