# The base policy: a tiny Qwen3 warmed up here (embedded default), or a pointer to a hub model.


# code: src/rarft/policy.py:init_policy
rule init_policy:
    input:
        train=rules.decontaminate.output.train,
        corpus=rules.build_traces.output.corpus,
        bench=rules.decontaminate.output.bench,
    output:
        model=directory("models/policy/base"),
        # the world's tiny policy is probed on the benchmarks before any retrieval is trained
        **({"probe": "results/reports/policy_probe.json"} if TINY_WORLD_POLICY else {}),
    params:
        **stage_params("init_policy"),
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
        **res("init_policy"),
    shell:
        "{params.rarft} init-policy --config {params.configs} --train {input.train} --corpus {input.corpus}"
        " --exclude {input.bench} --out {output.model} {params.probe} > {log} 2>&1"
