from pathlib import Path

from workflow_scripts.jobs import log_to
from workflow_scripts.data.samples import prepare_samples

with log_to(snakemake.log[0]):
    meta = prepare_samples(snakemake.params.spec, Path(snakemake.output.train_meta).parent)
    print({k: meta[k] for k in ("task", "n", "x_shape", "x_dtype", "n_classes", "optimal_loss")})
