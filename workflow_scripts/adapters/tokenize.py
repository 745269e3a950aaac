from workflow_scripts.adapters import log_to
from workflow_scripts.io import read_json
from workflow_scripts.tokens import tokenize_split

with log_to(snakemake.log[0]):
    meta = tokenize_split(
        snakemake.input.tokenizer,
        snakemake.input.text,
        snakemake.output.tokens,
        snakemake.output.meta,
        source_meta=read_json(snakemake.input.source),
        split=snakemake.wildcards.split,
    )
    print({k: meta[k] for k in ("split", "n_tokens", "vocab_size", "dtype")})
