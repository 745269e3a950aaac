# Training stage: one job per cell (experiment × model size × data size × seed).


rule train_cell:
    input:
        unpack(get_cell_tokens),
    output:
        metrics="results/{experiment}/runs/{model}/{data}/{seed}/metrics.json",
        curve="results/{experiment}/runs/{model}/{data}/{seed}/curve.csv",
    log:
        "results/{experiment}/logs/train/{model}/{data}/{seed}.log",
    benchmark:
        "results/{experiment}/benchmarks/train/{model}/{data}/{seed}.tsv"
    conda:
        "../envs/train.yaml"
    threads: get_train_threads
    resources:
        mem_mb=get_train_resource("mem_mb"),
        runtime=get_train_resource("runtime"),
        gpu=get_train_resource("gpu"),
        gpu_model=get_train_resource("gpu_model"),
    params:
        flags=get_train_flags,
    shell:
        "python -m workflow_scripts.train {params.flags} --threads {threads}"
        " --train-tokens {input.train} --val-tokens {input.val}"
        " --metrics {output.metrics} --curve {output.curve} > {log} 2>&1"
