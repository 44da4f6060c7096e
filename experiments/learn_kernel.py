"""Learns convolution kernels by gradient descent, one config per experiment.

    python -m experiments.learn_kernel --config=configs/learn_document_kernel.py \
        --workdir=runs/learn_document_kernel

Any config field can be overridden (`--config.optimizer.learning_rate=0.05`);
`--overwrite` replaces a finished workdir (deleting only the files a run wrote),
`--allow_optimizer_change` resumes an unfinished one with other optimizer
settings (recorded in its `config_changes.jsonl`), `--quiet` hides the progress
bar. Exit codes: README, "Reliability".
The work is in `experiments.kernel_learning` and `jconv.learn`.
"""

from experiments import kernel_learning, runner

if __name__ == "__main__":
    runner.main(kernel_learning.run)
