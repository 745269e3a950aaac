# Analysis stage: every cell into runs.csv, laws fitted with bootstrap
# intervals, figures regenerated from scratch.


rule aggregate:
    input:
        get_experiment_metrics,
    output:
        report(
            "results/{experiment}/runs.csv",
            caption="report/runs.rst",
            category="{experiment}",
            labels={"table": "runs"},
        ),
    log:
        "results/{experiment}/logs/aggregate.log",
    conda:
        "../envs/analysis.yaml"
    shell:
        "python -m workflow_scripts.aggregate --out {output} {input} > {log} 2>&1"


rule fit:
    input:
        "results/{experiment}/runs.csv",
    output:
        "results/{experiment}/fits.json",
    log:
        "results/{experiment}/logs/fit.log",
    benchmark:
        "results/{experiment}/benchmarks/fit.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        analysis=get_analysis,
    shell:
        "python -m workflow_scripts.fit --runs {input} --out {output}"
        " --bootstrap {params.analysis[bootstrap]} --seed {params.analysis[seed]} > {log} 2>&1"


rule figures:
    input:
        runs="results/{experiment}/runs.csv",
        fits="results/{experiment}/fits.json",
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
    log:
        "results/{experiment}/logs/figures.log",
    conda:
        "../envs/analysis.yaml"
    shell:
        "python -m workflow_scripts.figures --runs {input.runs} --fits {input.fits}"
        " --loss-vs-n {output.loss_vs_n_png} {output.loss_vs_n_pdf}"
        " --loss-vs-d {output.loss_vs_d_png} {output.loss_vs_d_pdf} > {log} 2>&1"
