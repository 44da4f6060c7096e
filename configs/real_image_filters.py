"""Classic filters learned from a real photograph: Sobel, Gaussian blur,
Laplacian and the document's kernel, from crops of scikit-image's `camera`
(shipped with scikit-image, no download).

    python -m experiments.learn_kernel --config=configs/real_image_filters.py \
        --workdir=runs/real_image_filters

Neighbouring pixels of a photo are strongly correlated, so the least-squares
problem is ill-conditioned (curvature ratio ~5000 here): plain gradient descent
crawls; tuned heavy-ball momentum gets there. Everything not set here is as
in configs/learn_document_kernel.py.
"""

from configs import learn_document_kernel


def get_config():
    c = learn_document_kernel.get_config()
    # skimage.data.camera(): 512x512 grey, scaled to [0, 1].
    c.data.source = "camera"
    # Random crops of the photo, each an input image.
    c.data.num_pairs = 8
    # Crop height = width, pixels.
    c.data.image_size = 48
    # The four true kernels, each learned from the same crops.
    c.target.kernels = ("sobel_x", "gaussian", "laplacian", "document")
    # Heavy-ball momentum, tuned to this curvature (about 0.0014 to 7): with
    # learning_rate * smallest curvature > (1 - sqrt(momentum))^2 the slow
    # directions shrink by sqrt(momentum) per step.
    # --config.optimizer.name=lbfgs --config.optimizer.learning_rate=1 works
    # too, but each step pays a line search (slower on CPU, see README).
    c.optimizer.name = "momentum"
    # Below 2 (1 + momentum) / 7, the stability limit.
    c.optimizer.learning_rate = 0.3
    # Heavy-ball momentum coefficient.
    c.optimizer.momentum = 0.98
    # Step budget, steps per jitted lax.scan (and per metrics row), steps
    # between checkpoints.
    c.train.update(max_steps=5000, chunk_steps=100, checkpoint_every=1000)
    return c
