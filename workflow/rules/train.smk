# Every arm of the paper's grid through one TRL entry point (GRPO, RA-RFT, SFT, RA-SFT, RLOO, DAPO, ...).


# code: src/rarft/train.py:train_policy
rule train_policy:
    input:
        base=rules.init_policy.output.model,
        train=arm_train,
        corpus=rules.build_traces.output.corpus,
        bench=rules.decontaminate.output.bench,
        retrieval=arm_retrieval,
    output:
        model=directory("models/policy/{arm}"),
        curve="runs/train/{arm}/curve.jsonl",
    wildcard_constraints:
        arm="|".join(ARMS),
    params:
        # `accelerate launch` for a multi-GPU train_policy (rarft.launch.train_command)
        **stage_params("train_policy", rarft=TRAIN_RARFT),
        retrieval=lambda wc, input: f"--retrieval {input.retrieval}" if input.retrieval else "",
        # seconds the launcher's agent waits for the workers to save after SIGTERM (rarft.launch.SIGTERM_GRACE_S);
        # a function of resources, so not a rerun trigger (common.smk stage_params)
        grace=lambda wc, resources: SIGTERM_GRACE_S,
    log:
        "logs/train_policy/{arm}.log",
    benchmark:
        "benchmarks/train_policy/{arm}.tsv"
    priority: priority("train_policy")
    conda:
        conda_env_of("train_policy")
    resources:
        **res("train_policy"),
    shell:
        # `trap : TERM`: on SLURM's SIGTERM before the time limit this shell waits for train-policy to save a
        # checkpoint and exit (143), instead of dying at once and ending the job step with the save half done
        "trap : TERM; TORCH_ELASTIC_SHUTDOWN_TIMEOUT={params.grace} {params.rarft} train-policy --config {params.configs}"
        " --arm {wildcards.arm} --base {input.base}"
        " --train {input.train} --corpus {input.corpus} {params.retrieval} --benchmarks {input.bench}"
        " --out {output.model} --run-dir runs/train/{wildcards.arm} > {log} 2>&1"
