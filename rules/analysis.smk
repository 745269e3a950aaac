# Analysis stage: every cell into runs.csv (+ curves, seed summary), laws fitted with bootstrap
# intervals, figures regenerated from scratch.


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
    shell:
        "python -m workflow_scripts.analysis.aggregate --out {output.runs} --curves {output.curves}"
        " --summary {output.summary} {input.metrics} > {log} 2>&1"


rule fit:
    input:
        runs="results/{experiment}/runs.csv",
        curves="results/{experiment}/curves.parquet",
    output:
        "results/{experiment}/fits.json",
    log:
        "results/{experiment}/logs/fit.log",
    benchmark:
        "results/{experiment}/benchmarks/fit.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        flags=get_fit_flags,
    shell:
        "python -m workflow_scripts.analysis.fit.experiment --runs {input.runs} --curves {input.curves}"
        " --out {output} {params.flags} > {log} 2>&1"


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


rule figures:
    input:
        runs="results/{experiment}/runs.csv",
        fits="results/{experiment}/fits.json",
        curves="results/{experiment}/curves.parquet",
    output:
        loss_vs_n_png=report(
            "results/{experiment}/figures/loss_vs_N.png",
            caption="report/loss_vs_N.rst",
            category="{experiment}",
            labels={"figure": "loss vs N"},
        ),
        loss_vs_n_pdf="results/{experiment}/figures/loss_vs_N.pdf",
        loss_vs_d_png=report(
            "results/{experiment}/figures/loss_vs_D.png",
            caption="report/loss_vs_D.rst",
            category="{experiment}",
            labels={"figure": "loss vs D"},
        ),
        loss_vs_d_pdf="results/{experiment}/figures/loss_vs_D.pdf",
        learning_curves_png=report(
            "results/{experiment}/figures/learning_curves.png",
            caption="report/learning_curves.rst",
            category="{experiment}",
            labels={"figure": "learning curves"},
        ),
        learning_curves_pdf="results/{experiment}/figures/learning_curves.pdf",
        loss_vs_C_png=report(
            "results/{experiment}/figures/loss_vs_C.png",
            caption="report/loss_vs_C.rst",
            category="{experiment}",
            labels={"figure": "loss vs C"},
        ),
        loss_vs_C_pdf="results/{experiment}/figures/loss_vs_C.pdf",
        isoflops_png=report(
            "results/{experiment}/figures/isoflops.png",
            caption="report/isoflops.rst",
            category="{experiment}",
            labels={"figure": "IsoFLOP profiles"},
        ),
        isoflops_pdf="results/{experiment}/figures/isoflops.pdf",
        N_opt_png=report(
            "results/{experiment}/figures/N_opt.png",
            caption="report/N_opt.rst",
            category="{experiment}",
            labels={"figure": "N_opt vs C"},
        ),
        N_opt_pdf="results/{experiment}/figures/N_opt.pdf",
        residuals_png=report(
            "results/{experiment}/figures/residuals.png",
            caption="report/residuals.rst",
            category="{experiment}",
            labels={"figure": "fit residuals"},
        ),
        residuals_pdf="results/{experiment}/figures/residuals.pdf",
        parameters_png=report(
            "results/{experiment}/figures/parameters.png",
            caption="report/parameters.rst",
            category="{experiment}",
            labels={"figure": "fitted parameters"},
        ),
        parameters_pdf="results/{experiment}/figures/parameters.pdf",
        approach1_png=report(
            "results/{experiment}/figures/approach1.png",
            caption="report/approach1.rst",
            category="{experiment}",
            labels={"figure": "approach 1 envelope"},
        ),
        approach1_pdf="results/{experiment}/figures/approach1.pdf",
        accuracy_vs_C_png=report(
            "results/{experiment}/figures/accuracy_vs_C.png",
            caption="report/accuracy_vs_C.rst",
            category="{experiment}",
            labels={"figure": "accuracy vs C"},
        ),
        accuracy_vs_C_pdf="results/{experiment}/figures/accuracy_vs_C.pdf",
        kaplan_png=report(
            "results/{experiment}/figures/kaplan.png",
            caption="report/kaplan.rst",
            category="{experiment}",
            labels={"figure": "Kaplan joint laws"},
        ),
        kaplan_pdf="results/{experiment}/figures/kaplan.pdf",
    log:
        "results/{experiment}/logs/figures.log",
    benchmark:
        "results/{experiment}/benchmarks/figures.tsv"
    conda:
        "../envs/analysis.yaml"
    shell:
        "python -m workflow_scripts.analysis.figures.draw --runs {input.runs} --fits {input.fits}"
        " --curves {input.curves}"
        " --loss-vs-n {output.loss_vs_n_png} {output.loss_vs_n_pdf}"
        " --loss-vs-d {output.loss_vs_d_png} {output.loss_vs_d_pdf}"
        " --figure learning_curves {output.learning_curves_png} {output.learning_curves_pdf}"
        " --figure loss_vs_C {output.loss_vs_C_png} {output.loss_vs_C_pdf}"
        " --figure isoflops {output.isoflops_png} {output.isoflops_pdf}"
        " --figure N_opt {output.N_opt_png} {output.N_opt_pdf}"
        " --figure residuals {output.residuals_png} {output.residuals_pdf}"
        " --figure parameters {output.parameters_png} {output.parameters_pdf}"
        " --figure approach1 {output.approach1_png} {output.approach1_pdf}"
        " --figure accuracy_vs_C {output.accuracy_vs_C_png} {output.accuracy_vs_C_pdf}"
        " --figure kaplan {output.kaplan_png} {output.kaplan_pdf}"
        " > {log} 2>&1"


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
