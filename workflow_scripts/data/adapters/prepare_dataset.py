from pathlib import Path

from workflow_scripts.jobs import log_to
from workflow_scripts.data.sources import prepare_dataset

with log_to(snakemake.log[0]):
    prepare_dataset(snakemake.params.spec, Path(snakemake.output.meta).parent)
