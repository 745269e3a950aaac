from workflow_scripts.jobs import log_to
from workflow_scripts.data.tokenizer import train_tokenizer

with log_to(snakemake.log[0]):
    print(train_tokenizer(snakemake.params.spec, snakemake.input.train, snakemake.output[0]))
