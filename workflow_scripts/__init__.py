"""Plain-Python stages of the scaling-law pipeline.

Each module holds one stage (data sources, tokenizers, token files, model,
training, aggregation, fitting, figures) as functions that tests call
directly; the Snakemake rules in ``rules/`` are thin layers over them.
"""
