# Data stage: a url source is downloaded once (verified by sha256, shared by
# every dataset naming it), a source becomes raw text splits, a tokenizer is
# trained on the train split (or a pretrained one copied), and every split
# becomes a flat memory-mapped token file. Samples datasets (sine, mnist1d,
# image tables) become .npy arrays instead.

# A local dataset's files are inputs of its preparation: editing one re-runs it
# (workflow_scripts.plan.inputs.local_input_files; a glob matching nothing stays as is,
# so Snakemake names it as missing).


# Downloads run on the submitting host: cluster compute nodes are often offline.
localrules:
    download,


rule download:
    output:
        "resources/downloads/{download}",
    log:
        "resources/downloads/logs/{download}.log",
    conda:
        "../envs/data.yaml"
    params:
        spec=get_download,
    script:
        "../workflow_scripts/data/adapters/download.py"


rule prepare_dataset:
    input:
        get_dataset_download,
        get_local_inputs,
    output:
        train="results/data/{dataset}/raw/train.txt",
        val="results/data/{dataset}/raw/val.txt",
        test="results/data/{dataset}/raw/test.txt",
        meta="results/data/{dataset}/raw/source.json",
    log:
        "results/data/{dataset}/logs/prepare.log",
    benchmark:
        "results/data/{dataset}/benchmarks/prepare.tsv"
    conda:
        "../envs/data.yaml"
    params:
        spec=get_dataset_spec,
    script:
        "../workflow_scripts/data/adapters/prepare_dataset.py"


# Samples datasets: x and y arrays and a meta per split (contract: samples/{split}.*).
rule prepare_samples:
    input:
        get_local_inputs,
    output:
        train_x="results/data/{dataset}/samples/train.x.npy",
        train_y="results/data/{dataset}/samples/train.y.npy",
        train_meta="results/data/{dataset}/samples/train.json",
        val_x="results/data/{dataset}/samples/val.x.npy",
        val_y="results/data/{dataset}/samples/val.y.npy",
        val_meta="results/data/{dataset}/samples/val.json",
        test_x="results/data/{dataset}/samples/test.x.npy",
        test_y="results/data/{dataset}/samples/test.y.npy",
        test_meta="results/data/{dataset}/samples/test.json",
    log:
        "results/data/{dataset}/logs/prepare_samples.log",
    benchmark:
        "results/data/{dataset}/benchmarks/prepare_samples.tsv"
    conda:
        "../envs/data.yaml"
    params:
        spec=get_dataset_spec,
    script:
        "../workflow_scripts/data/adapters/prepare_samples.py"


# A tokenizer named "samples" would clash with the samples folder: the samples win.
ruleorder: prepare_samples > tokenize


rule train_tokenizer:
    input:
        train="results/data/{dataset}/raw/train.txt",
    output:
        "results/data/{dataset}/{tokenizer}/tokenizer.json",
    log:
        "results/data/{dataset}/logs/{tokenizer}/train_tokenizer.log",
    conda:
        "../envs/data.yaml"
    params:
        spec=get_tokenizer_spec,
    script:
        "../workflow_scripts/data/adapters/train_tokenizer.py"


rule tokenize:
    input:
        tokenizer="results/data/{dataset}/{tokenizer}/tokenizer.json",
        text="results/data/{dataset}/raw/{split}.txt",
        source="results/data/{dataset}/raw/source.json",
    output:
        tokens="results/data/{dataset}/{tokenizer}/{split}.bin",
        meta="results/data/{dataset}/{tokenizer}/{split}.json",
    log:
        "results/data/{dataset}/logs/{tokenizer}/tokenize_{split}.log",
    benchmark:
        "results/data/{dataset}/benchmarks/{tokenizer}/tokenize_{split}.tsv"
    conda:
        "../envs/data.yaml"
    threads: workflow.cores
    script:
        "../workflow_scripts/data/adapters/tokenize.py"


# Another dataset's test split in this experiment's tokens: the transfer loss.
rule tokenize_transfer:
    input:
        tokenizer="results/data/{dataset}/{tokenizer}/tokenizer.json",
        text="results/data/{other}/raw/test.txt",
        source="results/data/{other}/raw/source.json",
    output:
        tokens="results/data/{dataset}/{tokenizer}/transfer/{other}.bin",
        meta="results/data/{dataset}/{tokenizer}/transfer/{other}.json",
    log:
        "results/data/{dataset}/logs/{tokenizer}/tokenize_transfer_{other}.log",
    benchmark:
        "results/data/{dataset}/benchmarks/{tokenizer}/tokenize_transfer_{other}.tsv"
    wildcard_constraints:
        other="[A-Za-z0-9_.-]+",
    conda:
        "../envs/data.yaml"
    threads: workflow.cores
    params:
        split="test",
    script:
        "../workflow_scripts/data/adapters/tokenize.py"
