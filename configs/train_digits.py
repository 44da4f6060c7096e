"""A small CNN of `jconv.nnx.Conv2D` layers on scikit-learn's 8x8 handwritten
digits (1797 images, shipped inside scikit-learn: no download).

    python -m experiments.train_digits --config=configs/train_digits.py \
        --workdir=runs/train_digits

Any field can be overridden, e.g. `--config.model.impl=einsum` or
`--config.train.epochs=10`; `--overwrite` replaces a finished workdir.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    # Seed of the train/test split, the initial weights and the batch order:
    # same seed and config, same metrics (on the same machine and backend).
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    # Fraction of the 1797 images held out for testing (stratified by digit).
    c.data.test_fraction = 0.25

    c.model = ml_collections.ConfigDict()
    # Output channels of each "same" convolution (each followed by ReLU); every
    # layer after the first has stride 2 (8x8 -> 8x8 -> 4x4 -> ...); the last
    # one's output is flattened into a linear layer to the 10 logits.
    c.model.channels = (32, 64)
    # Kernel height = width of every convolution.
    c.model.kernel_size = 3
    # jconv implementation of every convolution: "lax" or "einsum".
    c.model.impl = "lax"
    # Matmul precision of the convolutions: None (backend default; float32 on
    # CPUs), "default", "high" or "highest".
    c.model.precision = None

    c.optimizer = ml_collections.ConfigDict()
    # optax.adamw with a cosine decay from learning_rate to 0 over the run.
    c.optimizer.learning_rate = 1e-2
    # Decoupled weight decay of adamw.
    c.optimizer.weight_decay = 1e-4

    c.train = ml_collections.ConfigDict()
    # Passes over the training set.
    c.train.epochs = 30
    # Images per step; each epoch drops the last incomplete batch (reshuffled
    # every epoch, so every image is used).
    c.train.batch_size = 64
    # Evaluate on the test set (and log a metrics row) every this many epochs.
    c.train.eval_every = 1
    # Save an orbax checkpoint every this many epochs (a killed run resumes
    # from the last one).
    c.train.checkpoint_every = 5
    return c
