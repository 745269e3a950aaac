from workflow_scripts.jobs import log_to
from workflow_scripts.data.download import fetch

with log_to(snakemake.log[0]):
    spec = snakemake.params.spec
    print(f"{spec['url']} -> {fetch(spec['url'], spec['sha256'], snakemake.output[0])}")
