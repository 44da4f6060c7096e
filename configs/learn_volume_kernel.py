"""3-D: a 3x3x3 Laplacian, box blur and Gaussian blur learned from zeros by
plain gradient descent on random volumes, down to float32 precision.

    python -m experiments.learn_kernel --config=configs/learn_volume_kernel.py \
        --workdir=runs/learn_volume_kernel

A Keras `Conv3D(1, 3)` layer on volumes `(N, D, H, W, C)`: 27 weights per
kernel from 8 volumes of 8x8x8 voxels ("valid": 6x6x6 outputs each, 1728
equations). Standard normal voxels make the loss's curvature about 2 in
every direction (1.6 to 2.6 for this many equations), so plain gradient
descent at 0.5 shrinks the error at least threefold per step. The plots show
each kernel (true, learned, least squares, error) slice by slice and the
middle depth slice of a volume before and after it. Everything not set here
is as in configs/learn_document_kernel.py.
"""

from configs import learn_document_kernel


def get_config():
    c = learn_document_kernel.get_config()
    # Standard normal 3-D volumes (N, D, H, W, C): the kernels are 3-D.
    c.data.source = "random_volume"
    # Number of input/output pairs (volumes).
    c.data.num_pairs = 8
    # Depth = height = width of each input volume, voxels.
    c.data.image_size = 8
    # The true kernels, each learned separately (and at once): 3x3x3, one
    # channel (experiments/kernel_data.py, NAMED_VOLUME_KERNELS).
    c.target.kernels = ("laplacian", "box", "gaussian")
    # Kernel depth = height = width (the named kernels are 3).
    c.target.kernel_size = 3
    # Only whole windows: 6x6x6 outputs.
    c.model.padding = "valid"
    # Plain gradient descent.
    c.optimizer.name = "sgd"
    # About 2 / (smallest + largest curvature), the fastest fixed rate.
    c.optimizer.learning_rate = 0.5
    # Step budget, steps per jitted lax.scan (and per metrics row), steps
    # between checkpoints.
    c.train.update(max_steps=100, chunk_steps=1, checkpoint_every=20)
    return c
