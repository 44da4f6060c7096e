"""Kernel error against target noise and number of pairs, gradient descent next
to the closed-form least-squares estimate at every point of the grid.

    python -m experiments.learn_kernel --config=configs/noise_sweep.py \
        --workdir=runs/noise_sweep

Every (noise, pairs) point is its own problem (the document's kernel, the same
random images, its own noise draw), all trained at once. Least squares' error
grows like noise / sqrt(equations); gradient descent, run to convergence,
lands on the least-squares solution itself. Everything not set here is as in
configs/learn_document_kernel.py.
"""

import ml_collections

from configs import learn_document_kernel


def get_config():
    c = learn_document_kernel.get_config()
    # A grid of problems instead of one.
    c.experiment = "noise_sweep"
    # The grid gives the number of pairs and the noise.
    del c.data["num_pairs"]
    del c.data["noise_std"]
    c.sweep = ml_collections.ConfigDict()
    # Standard deviations of the Gaussian noise added to the targets (the
    # targets' own standard deviation is about 12).
    c.sweep.noise_stds = (0.0, 0.01, 0.1, 1.0, 10.0)
    # Numbers of 16x16 input images (each gives 14 x 14 = 196 equations).
    c.sweep.num_pairs = (1, 4, 16)
    # Plain gradient descent: the curvature is about 2, 0.4 is safe even for
    # one image.
    c.optimizer.learning_rate = 0.4
    # Step budget, steps per jitted lax.scan (and per metrics row), steps
    # between checkpoints.
    c.train.update(max_steps=300, chunk_steps=20, checkpoint_every=100)
    # Noisy targets never give the true kernel: stop on the gradient instead,
    # at 1e-6 of its starting norm (the least-squares point, to float32).
    c.train.kernel_rtol = 0.0
    c.train.grad_rtol = 1e-6
    return c
