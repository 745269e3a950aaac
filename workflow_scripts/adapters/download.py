from workflow_scripts.adapters import log_to
from workflow_scripts.download import fetch

with log_to(snakemake.log[0]):
    spec = snakemake.params.spec
    print(f"{spec['url']} -> {fetch(spec['url'], spec['sha256'], snakemake.output[0])}")
