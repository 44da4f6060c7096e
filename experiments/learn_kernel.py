"""Learns convolution kernels by gradient descent, one config per experiment.

    python -m experiments.learn_kernel --config=configs/learn_document_kernel.py \
        --workdir=runs/learn_document_kernel

The configs in `configs/` that name this script learn 2-D kernels (images),
1-D ones (`learn_signal_kernel.py`, signal filters) and 3-D ones
(`learn_volume_kernel.py`). Any config field can be overridden
(`--config.optimizer.learning_rate=0.05`);
`--overwrite` replaces a finished workdir (deleting only the files a run wrote),
`--allow_optimizer_change` resumes an unfinished one with other optimizer
settings (recorded in its `config_changes.jsonl`), `--quiet` hides the progress
bar. Exit codes: README, "Reliability".
This file is kept short on purpose: the work is in
`experiments.kernel_learning.run` (what tests call) and `jconv.learn`.
"""

from absl import app
from ml_collections import config_flags

from experiments import kernel_learning, runner

config_flags.DEFINE_config_file(
    "config", None, "config file with get_config()", lock_config=True
)
runner.define_flags(config=False)  # --workdir, --overwrite, --quiet, ...


def main(argv):
    del argv  # everything is in the flags
    runner.run_experiment(kernel_learning.run)


if __name__ == "__main__":
    app.run(main, flags_parser=runner.parse_flags)
