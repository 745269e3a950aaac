"""Thin ``script:`` adapters: each hands Snakemake's inputs to one plain function and ends
through workflow_scripts.jobs.log_to (the traceback in the log, then one line)."""
