# rarft: the RA-RFT pipeline as a Snakemake DAG.
#   snakemake --cores all                       # embedded default (params.yaml), CPU, offline
#   snakemake --cores all --use-conda           # each rule in its workflow/envs/*.yaml
#   snakemake --configfile config/qwen3-1.7b.yaml --workflow-profile workflow/profiles/slurm
# Rules only wire files to `python -m rarft <stage>`; all logic is in src/rarft/.
# dvc.yaml is generated from this DAG: `python -m rarft export-dvc` (tests/test_workflow.py checks it).

import sys

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


sys.path.insert(0, f"{workflow.basedir}/src")  # rarft.config is pure Python: `key: null` deletes a mapping entry
from rarft.config import check_trainer_fields, prune_deleted
prune_deleted(config, ["params.yaml", *workflow.overwrite_configfiles])
validate(config, "workflow/schemas/config.schema.yaml")
# rl.trainer, rl.sft.trainer, retriever.train.trainer go verbatim to TRL / sentence-transformers: a misspelt key
# fails here, before the DAG runs, not when train-policy starts after the labels and the retriever
check_trainer_fields(config, ["params.yaml", *workflow.overwrite_configfiles])


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/policy.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/retriever.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        ANALYSIS_OUTPUTS,
    default_target: True
