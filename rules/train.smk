# Training stage: one job per cell (experiment × model size × data size × seed),
# and under WSD with branching one stable phase per (model, seed) before them.
# The three rules are one job shape: `<launcher> <cell flags> <job flags>`, the launcher
# and the flags assembled by workflow_scripts.plan.flags (`python -m
# workflow_scripts.train.token_cell`, its data-parallel wrapper workflow_scripts.train.ddp
# for several GPUs, or workflow_scripts.train.samples_cell for mlp and cnn cells).


rule train_cell:
    input:
        unpack(get_train_inputs),
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
    threads: TRAIN_THREADS
    resources:
        mem_mb=get_train_resource("mem_mb"),
        runtime=get_train_resource("runtime"),
        gpu=TRAIN_GPU,
        gpu_model=TRAIN_GPU_MODEL,
    params:
        # The cell's flags apart (a function of wildcards only): a change in them re-runs the cell.
        flags=get_train_flags,
        job=get_train_job,
    shell:
        "{params.job.launcher} {params.flags} {params.job.job_flags} > {log} 2>&1"


# An mlp or cnn cell on a samples dataset (sine, MNIST-1D, MNIST): same outputs, its own trainer.
use rule train_cell as train_samples_cell with:
    input:
        get_train_inputs,
    wildcard_constraints:
        model=r"(mlp|cnn)-L\d+-w\d+",


# The largest cell's run up to its cooldown, saving the state where each cell's
# cooldown starts; temp(): the branch checkpoints go once their cells are done.
use rule train_cell as stable_phase with:
    output:
        temp(directory("results/{experiment}/branches/{model}/{seed}")),
    log:
        "results/{experiment}/logs/stable_phase/{model}/{seed}.log",
    benchmark:
        "results/{experiment}/benchmarks/stable_phase/{model}/{seed}.tsv"


# Packs (workflow_scripts.plan.packs): a chunk of an experiment's small CPU cells at one seed,
# trained one after another in one process; each cell keeps the files, log and benchmark
# file of rule train_cell (the pack writes the last two), over which the pack rules go first.
for pack in TRAIN_JOBS.packs:

    rule:
        name:
            pack.rule
        input:
            TRAIN_JOBS.pack_inputs(pack),
        output:
            metrics=pack.run_files("metrics.json"),
            curve=pack.run_files("curve.csv"),
        log:
            job=pack.job_log,
        benchmark:
            pack.job_benchmark
        conda:
            "../envs/train.yaml"
        threads: job_threads(config["experiments"][pack.experiment])
        resources:
            mem_mb=get_pack_resource(pack, "mem_mb"),
            runtime=get_pack_resource(pack, "runtime"),
        params:
            flags=get_pack_flags(pack),
            command=get_pack_command(pack),
        shell:
            "{params.command} > {log.job} 2>&1"

    workflow.ruleorder(pack.rule, "train_cell", "train_samples_cell")
