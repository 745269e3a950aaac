# Scaling-law study: data → tokenizer → token files → one training job per cell
# → runs.csv → fitted laws → figures. Read rules/ in that order.
from snakemake.utils import min_version

min_version("9.0")


# The HTML report opens on every experiment's fitted laws and their verdicts (results/summary.rst).
report: "rules/report/workflow.rst"


# A --configfile replaces the default study instead of being merged into it.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/analysis.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),


# One warning line per law judged a poor fit, read from every experiment's fits.json.
onsuccess:
    shell(
        "python -m workflow_scripts.analysis.law_summary --warn --fits "
        + " ".join(expand("results/{e}/fits.json", e=config["experiments"]))
    )
