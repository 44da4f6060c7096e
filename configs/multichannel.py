"""A whole Conv2D layer learned: 3 input channels -> 4 output channels, with
bias, stride 2, "same" padding, from crops of an RGB photograph
(scikit-image's `astronaut`, shipped with it, no download).

    python -m experiments.learn_kernel --config=configs/multichannel.py \
        --workdir=runs/multichannel

108 weights and 4 biases. The photo's channels and neighbouring pixels are
strongly correlated: the least-squares problem is badly conditioned
(curvature ratio ~1e5) and tuned heavy-ball momentum does the work.
Everything not set here is as in configs/learn_document_kernel.py.
"""

from configs import learn_document_kernel


def get_config():
    c = learn_document_kernel.get_config()
    # skimage.data.astronaut(): 512x512 RGB, scaled to [0, 1].
    c.data.source = "astronaut"
    # Random crops of the photo, each an input image.
    c.data.num_pairs = 8
    # Crop height = width, pixels.
    c.data.image_size = 32
    # RGB input.
    c.data.channels = 3
    # A random true layer: N(0, 1/27) weights; with use_bias a N(0, 0.25) bias.
    c.target.kernels = ("random",)
    # 3x3 windows.
    c.target.kernel_size = 3
    # Four output channels.
    c.target.channels_out = 4
    # Learn the bias too.
    c.model.use_bias = True
    # Stride 2: 32x32 crops give 16x16 outputs.
    c.model.strides = 2
    # TensorFlow/Keras "same": output ceil(32 / 2) = 16, pad 0 top/left and
    # 1 bottom/right.
    c.model.padding = "same"
    # Heavy-ball momentum, tuned to this curvature (about 1e-5 to 6): with
    # learning_rate * smallest curvature > (1 - sqrt(momentum))^2 the slow
    # directions shrink by sqrt(momentum) per step. L-BFGS
    # (--config.optimizer.name=lbfgs --config.optimizer.learning_rate=1) is
    # far slower here, see README.
    c.optimizer.name = "momentum"
    # Below 2 (1 + momentum) / 6, the stability limit.
    c.optimizer.learning_rate = 0.6
    # Heavy-ball momentum coefficient.
    c.optimizer.momentum = 0.995
    # Step budget, steps per jitted lax.scan (and per metrics row), steps
    # between checkpoints.
    c.train.update(max_steps=10000, chunk_steps=100, checkpoint_every=1000)
    return c
