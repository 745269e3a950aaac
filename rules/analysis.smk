# Analysis stage: every cell into runs.csv (+ curves, seed summary), laws fitted with bootstrap
# intervals, figures regenerated from scratch, a summary of every law's verdict.


rule aggregate:
    input:
        metrics=get_experiment_metrics,
        # Read from beside each metrics.json; listed so a changed curve re-runs this.
        curves=get_experiment_curves,
    output:
        runs=report(
            "results/{experiment}/runs.csv",
            caption="report/runs.rst",
            category="{experiment}",
            labels={"table": "runs"},
        ),
        curves="results/{experiment}/curves.parquet",
        summary=report(
            "results/{experiment}/cells_summary.csv",
            caption="report/cells_summary.rst",
            category="{experiment}",
            labels={"table": "cells summary"},
        ),
    log:
        "results/{experiment}/logs/aggregate.log",
    conda:
        "../envs/analysis.yaml"
    params:
        select=get_sweep_select,
    shell:
        "python -m workflow_scripts.analysis.aggregate --out {output.runs} --curves {output.curves}"
        " --summary {output.summary} --select {params.select} {input.metrics} > {log} 2>&1"


# An IsoFLOP grid bracketing its optimum (experiment.bracket): round r's record says on which
# side of the sizes trained so far a budget's vertex lies; the cells it asks for join the DAG.
checkpoint bracket:
    input:
        get_bracket_round_metrics,
    output:
        "results/{experiment}/bracket/round{round}.json",
    log:
        "results/{experiment}/logs/bracket_round{round}.log",
    conda:
        "../envs/analysis.yaml"
    shell:
        "python -m workflow_scripts.analysis.bracket --experiment {wildcards.experiment}"
        " --round {wildcards.round} --out {output} {input} > {log} 2>&1"


rule fit:
    input:
        runs="results/{experiment}/runs.csv",
        curves="results/{experiment}/curves.parquet",
        bracket=get_bracket_files,
    output:
        "results/{experiment}/fits.json",
    log:
        "results/{experiment}/logs/fit.log",
    benchmark:
        "results/{experiment}/benchmarks/fit.tsv"
    conda:
        "../envs/analysis.yaml"
    # L(N,D)'s start grid and bootstrap run in this many processes (Snakemake caps it at --cores).
    threads: 4
    params:
        flags=get_fit_flags,
        bracket=get_bracket_flags,
    shell:
        "python -m workflow_scripts.analysis.fit.experiment --runs {input.runs} --curves {input.curves}"
        " --out {output} {params.flags} {params.bracket} --bracket-records {input.bracket}"
        " --workers {threads} > {log} 2>&1"


rule tables:
    input:
        "results/{experiment}/fits.json",
    output:
        csv=report(
            "results/{experiment}/fits.csv",
            caption="report/fits.rst",
            category="{experiment}",
            labels={"table": "fitted laws"},
        ),
        tex="results/{experiment}/fits.tex",
    log:
        "results/{experiment}/logs/tables.log",
    conda:
        "../envs/analysis.yaml"
    shell:
        "python -m workflow_scripts.analysis.tables --fits {input} --csv {output.csv}"
        " --tex {output.tex} > {log} 2>&1"


# One rule per figure of the catalog (workflow_scripts/analysis/figures/figures.yaml), each with its
# caption; get_final_outputs asks only for the figures that apply to each experiment.
for figure in figure_catalog():

    rule:
        name:
            f"figure_{figure.name}"
        input:
            runs="results/{experiment}/runs.csv",
            fits="results/{experiment}/fits.json",
            curves="results/{experiment}/curves.parquet",
        output:
            png=report(
                f"results/{{experiment}}/figures/{figure.name}.png",
                caption=f"report/{figure.caption}",
                category="{experiment}",
                labels={"figure": figure.label},
            ),
            pdf=f"results/{{experiment}}/figures/{figure.name}.pdf",
        log:
            f"results/{{experiment}}/logs/figures/{figure.name}.log",
        benchmark:
            f"results/{{experiment}}/benchmarks/figures/{figure.name}.tsv"
        # With the profile's groups of aggregate and fit (profiles/slurm): one SLURM job per experiment.
        group:
            "analysis"
        conda:
            "../envs/analysis.yaml"
        params:
            figure=figure.name,
        shell:
            "python -m workflow_scripts.analysis.figures --runs {input.runs} --fits {input.fits}"
            " --curves {input.curves} --figure {params.figure} {output.png} {output.pdf} > {log} 2>&1"


# Variants side by side: this experiment and those its analysis.compare names.
rule compare:
    input:
        runs=get_compare_files("runs.csv"),
        fits=get_compare_files("fits.json"),
    output:
        png=report(
            "results/{experiment}/figures/compare.png",
            caption="report/compare.rst",
            category="{experiment}",
            labels={"figure": "variants compared"},
        ),
        pdf="results/{experiment}/figures/compare.pdf",
        csv=report(
            "results/{experiment}/compare.csv",
            caption="report/compare_table.rst",
            category="{experiment}",
            labels={"table": "exponents of variants"},
        ),
    log:
        "results/{experiment}/logs/compare.log",
    conda:
        "../envs/analysis.yaml"
    shell:
        "python -m workflow_scripts.analysis.compare --runs {input.runs} --fits {input.fits}"
        " --png {output.png} --pdf {output.pdf} --csv {output.csv} > {log} 2>&1"


# Every experiment's laws, exponents, intervals and verdicts: the report's landing page
# (rules/report/workflow.rst includes it).
rule summary:
    input:
        expand("results/{experiment}/fits.json", experiment=config["experiments"]),
    output:
        report(
            "results/summary.rst",
            caption="report/summary.rst",
            category="Summary",
            labels={"table": "fitted laws and verdicts"},
        ),
    log:
        "results/logs/summary.log",
    conda:
        "../envs/analysis.yaml"
    shell:
        "python -m workflow_scripts.analysis.law_summary --fits {input} --rst {output} > {log} 2>&1"
