"""The default of `make run`: the document's kernel learned from zeros by plain
gradient descent on random images, down to float32 precision.

    python -m experiments.learn_kernel --config=configs/learn_document_kernel.py \
        --workdir=runs/learn_document_kernel
"""

import ml_collections
import numpy as np
from ml_collections import config_dict


def get_config():
    c = ml_collections.ConfigDict()
    # Which routine of experiments.kernel_learning runs: "learn" trains the
    # kernels of target.kernels; also "noise_sweep", "document_example".
    c.experiment = "learn"
    # Seed of every random draw (images, noise, random kernels): same seed and
    # config, same summary.json numbers.
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    # Input images: "random" (standard normal pixels), "document_image" (the
    # document's 4x4), or a skimage.data photo: "camera", "astronaut", ...
    c.data.source = "random"
    # Number of input/output pairs (images).
    c.data.num_pairs = 32
    # Height = width of each input image, pixels.
    c.data.image_size = 16
    # Input channels C_in (random images only; a photo has its own).
    c.data.channels = 1
    # Standard deviation of the Gaussian noise added to the targets.
    c.data.noise_std = 0.0

    c.target = ml_collections.ConfigDict()
    # True kernels, each learned separately (and at once): "document",
    # "sobel_x", "sobel_y", "gaussian", "laplacian", "box" (3x3, one channel)
    # or "random" (kernel_size, channels, channels_out).
    c.target.kernels = ("document",)
    # Kernel height = width; named kernels are 3.
    c.target.kernel_size = 3
    # Output channels C_out of a "random" kernel; named kernels have 1.
    c.target.channels_out = 1

    c.model = ml_collections.ConfigDict()
    # Learn a bias too (the true layer then has a random bias).
    c.model.use_bias = False
    # Convolution stride (both axes).
    c.model.strides = 1
    # "valid" (only whole windows) or "same" (zero padding, output H = H / stride).
    c.model.padding = "valid"
    # jconv.conv2d implementation: "lax" or "einsum".
    c.model.impl = "lax"
    # Matmul precision of the convolution: "highest" keeps float32 on GPUs and
    # TPUs (their default rounds to bfloat16/TF32); None, "default", "high".
    c.model.precision = "highest"

    c.optimizer = ml_collections.ConfigDict()
    # optax optimiser: "sgd", "momentum", "nesterov", "adam", "rmsprop",
    # "lbfgs" (zoom line search).
    c.optimizer.name = "sgd"
    # Peak learning rate (lbfgs: a scale on the line search's step, keep 1.0).
    # The loss's curvature is about 2 on standard normal images, so 0.1 takes
    # about 100 steps; 0.5 would take a handful.
    c.optimizer.learning_rate = 0.1
    # Momentum of "momentum" and "nesterov", in [0, 1).
    c.optimizer.momentum = 0.9
    # Learning-rate schedule: "constant", "cosine", "exponential",
    # "warmup_cosine" (over train.max_steps).
    c.optimizer.schedule = "constant"
    # Linear warmup steps of "warmup_cosine".
    c.optimizer.warmup_steps = 0
    # Final learning rate as a fraction of the peak ("cosine", "exponential",
    # "warmup_cosine").
    c.optimizer.end_factor = 0.0
    # L-BFGS history length.
    c.optimizer.memory_size = 10

    c.train = ml_collections.ConfigDict()
    # Step budget; a multiple of chunk_steps.
    c.train.max_steps = 1000
    # Steps per jitted lax.scan; metrics are logged after each chunk.
    c.train.chunk_steps = 10
    # Checkpoint (orbax) every this many steps; a multiple of chunk_steps.
    c.train.checkpoint_every = 100
    # Stop when the loss falls below loss_rtol x the initial loss (0: off).
    c.train.loss_rtol = 0.0
    # Stop when max |learned - true| <= kernel_rtol x max |true| (0: off):
    # 8 float32 epsilons, float32 precision.
    c.train.kernel_rtol = 8 * float(np.finfo(np.float32).eps)
    # Stop when the gradient norm falls below grad_rtol x its initial value.
    c.train.grad_rtol = 0.0

    # The device mesh the learning runs on (README, "Scaling out"). The product
    # of the sizes is the number of devices used (the first ones JAX lists);
    # with several processes it must be all of them. The default is 1 device.
    c.mesh = ml_collections.ConfigDict()
    # Devices splitting the pairs (data parallel): each holds num_pairs / data
    # of them and XLA sums the gradients across devices. Must divide the
    # number of pairs; -1 takes every device the other axis leaves.
    c.mesh.data = 1
    # Devices splitting each image's rows (for images too large for one
    # device): XLA exchanges the halo rows a kernel needs. Must divide the
    # input and output heights; -1 as for data.
    c.mesh.height = 1

    # Several processes (hosts) with jax.distributed; README, "Scaling out".
    # Setting JCONV_DISTRIBUTED=1 in the environment is the same as
    # initialize=True.
    c.distributed = ml_collections.ConfigDict()
    # Call jax.distributed.initialize() before anything runs.
    c.distributed.initialize = False
    # Process 0's "host:port", reachable from every process; None: detected
    # by JAX (SLURM, Open MPI, Cloud TPU) or from JAX_COORDINATOR_ADDRESS.
    c.distributed.coordinator_address = config_dict.placeholder(str)
    # Number of processes; None: detected.
    c.distributed.num_processes = config_dict.placeholder(int)
    # This process's index, 0 .. num_processes - 1; None: detected.
    c.distributed.process_id = config_dict.placeholder(int)
    return c
