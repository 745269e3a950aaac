# Training stage: one job per cell (experiment × model size × data size × seed),
# and under WSD with branching one stable phase per (model, seed) before them.


# The largest cell's run up to its cooldown, saving the state where each cell's
# cooldown starts; temp(): the branch checkpoints go once their cells are done.
rule stable_phase:
    input:
        unpack(get_cell_tokens),
    output:
        temp(directory("results/{experiment}/branches/{model}/{seed}")),
    log:
        "results/{experiment}/logs/stable_phase/{model}/{seed}.log",
    benchmark:
        "results/{experiment}/benchmarks/stable_phase/{model}/{seed}.tsv"
    conda:
        "../envs/train.yaml"
    threads: get_train_threads
    resources:
        mem_mb=get_train_resource("mem_mb"),
        runtime=get_train_resource("runtime"),
        gpu=get_train_resource("gpu"),
        gpu_model=get_train_resource("gpu_model"),
    params:
        flags=get_stable_flags,
        launcher=get_launcher,
        threads=get_process_threads,
    shell:
        "{params.launcher} {params.flags} --threads {params.threads} --gpus {resources.gpu}"
        " --train-tokens {input.train} --val-tokens {input.val} --branch-dir {output} > {log} 2>&1"


rule train_cell:
    input:
        unpack(get_cell_inputs),
    output:
        metrics="results/{experiment}/runs/{model}/{data}/{seed}/metrics.json",
        curve="results/{experiment}/runs/{model}/{data}/{seed}/curve.csv",
    log:
        "results/{experiment}/logs/train/{model}/{data}/{seed}.log",
    benchmark:
        "results/{experiment}/benchmarks/train/{model}/{data}/{seed}.tsv"
    wildcard_constraints:
        model=r"L\d+-d\d+-h\d+",
    group:
        get_train_group
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
        launcher=get_launcher,
        threads=get_process_threads,
    shell:
        "{params.launcher} {params.flags} --threads {params.threads} --gpus {resources.gpu}"
        " --train-tokens {input.train} --val-tokens {input.val} --test-tokens {input.test}"
        " --metrics {output.metrics} --curve {output.curve} > {log} 2>&1"


# An mlp or cnn cell on a samples dataset (sine, MNIST-1D, MNIST): same outputs, its own trainer.
rule train_samples_cell:
    input:
        get_cell_samples,
    output:
        metrics="results/{experiment}/runs/{model}/{data}/{seed}/metrics.json",
        curve="results/{experiment}/runs/{model}/{data}/{seed}/curve.csv",
    log:
        "results/{experiment}/logs/train/{model}/{data}/{seed}.log",
    benchmark:
        "results/{experiment}/benchmarks/train/{model}/{data}/{seed}.tsv"
    wildcard_constraints:
        model=r"(mlp|cnn)-L\d+-w\d+",
    group:
        get_train_group
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
        data=get_samples_folder,
    shell:
        "python -m workflow_scripts.train.samples_cell {params.flags} --threads {threads} --gpus {resources.gpu}"
        " --data {params.data} --metrics {output.metrics} --curve {output.curve} > {log} 2>&1"
