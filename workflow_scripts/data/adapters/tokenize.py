from workflow_scripts.jobs import log_to
from workflow_scripts.io import read_json
from workflow_scripts.data.tokens import tokenize_split

# Rule tokenize names the split by a wildcard; rule tokenize_transfer (another dataset's
# test text in this experiment's tokenizer) by a parameter.
with log_to(snakemake.log[0]):
    meta = tokenize_split(
        snakemake.input.tokenizer,
        snakemake.input.text,
        snakemake.output.tokens,
        snakemake.output.meta,
        source_meta=read_json(snakemake.input.source),
        split=snakemake.params.get("split") or snakemake.wildcards.split,
    )
    print({k: meta[k] for k in ("split", "n_tokens", "vocab_size", "dtype")})
