# The base policy: a tiny Qwen3 warmed up here (embedded default), or a pointer to a hub model.


rule init_policy:
    input:
        train="data/clean/train.jsonl",
        corpus="data/traces/corpus.jsonl",
        bench=bench_files("clean"),
    output:
        model=directory("models/policy/base"),
        # the world's tiny policy is probed on the benchmarks before any retrieval is trained
        **({"probe": "results/reports/policy_probe.json"} if TINY_WORLD_POLICY else {}),
    params:
        cfg=section("policy", "seed", "data", "evaluation"),
        probe=lambda wc, output: f"--probe-report {output.probe}" if TINY_WORLD_POLICY else "",
    log:
        "logs/init_policy.log",
    benchmark:
        "benchmarks/init_policy.tsv"
    # The warm-up runs before any other policy work can start: give it every core (OMP_NUM_THREADS).
    threads: workflow.cores
    priority: priority("init_policy")
    conda:
        conda_env_of("init_policy")
    resources:
        gpu=gpus("init_policy"),
        mem_mb=res("init_policy", "mem_mb"),
        runtime=res("init_policy", "runtime"),
    shell:
        "{RARFT} init-policy --config {CONFIG_FILES} --train {input.train} --corpus {input.corpus}"
        " --exclude {input.bench} --out {output.model} {params.probe} > {log} 2>&1"
