# Data stage: a url source is downloaded once (verified by sha256, shared by
# every dataset naming it), a source becomes raw text splits, a tokenizer is
# trained on the train split (or a pretrained one copied), and every split
# becomes a flat memory-mapped token file.


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
        "../workflow_scripts/adapters/download.py"


rule prepare_dataset:
    input:
        get_dataset_download,
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
        "../workflow_scripts/adapters/prepare_dataset.py"


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
        "../workflow_scripts/adapters/train_tokenizer.py"


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
        "../workflow_scripts/adapters/tokenize.py"
