"""1-D: four 3-tap signal filters (a moving average, a first difference, a
second difference and a Gaussian blur) learned from zeros as causal filters,
by plain gradient descent on random signals, down to float32 precision.

    python -m experiments.learn_kernel --config=configs/learn_signal_kernel.py \
        --workdir=runs/learn_signal_kernel

A Keras `Conv1D(1, 3, padding="causal")` layer: output `t` reads inputs
`t - 2 .. t` (zeros before the signal starts), so each filter is a causal FIR
filter. Standard normal samples make the loss's curvature about 2 in every
direction, and a learning rate of 0.5 nearly a Newton step: a few tens of
steps reach float32 precision. The plots show each filter's taps (true,
learned, least squares) and a signal before and after it. Everything not set
here is as in configs/learn_document_kernel.py.
"""

from configs import learn_document_kernel


def get_config():
    c = learn_document_kernel.get_config()
    # Standard normal 1-D signals (N, W, C): the kernels are 1-D.
    c.data.source = "random_signal"
    # Number of input/output pairs (signals).
    c.data.num_pairs = 8
    # Length of each input signal, samples; 8 x 64 = 512 equations for the 3
    # taps of each filter.
    c.data.image_size = 64
    # The true filters, each learned separately (and at once): 3 taps, one
    # channel (experiments/kernel_data.py, NAMED_SIGNAL_KERNELS).
    c.target.kernels = (
        "moving_average",
        "first_difference",
        "second_difference",
        "gaussian",
    )
    # Filter length, taps (the named filters have 3).
    c.target.kernel_size = 3
    # Keras Conv1D's "causal": 2 zeros before each signal, none after; the
    # output has the input's length.
    c.model.padding = "causal"
    # Plain gradient descent.
    c.optimizer.name = "sgd"
    # The loss's curvature is 1.96 to 2.07 on these signals: nearly a Newton
    # step, the error shrinks about thirtyfold per step.
    c.optimizer.learning_rate = 0.5
    # Step budget, steps per jitted lax.scan (and per metrics row), steps
    # between checkpoints.
    c.train.update(max_steps=100, chunk_steps=1, checkpoint_every=20)
    return c
