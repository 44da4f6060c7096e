"""The document's kernel learned from the document's own 4x4 image alone, with
`padding` as the question: what can one image teach?

    python -m experiments.learn_kernel --config=configs/learn_from_document_image.py \
        --workdir=runs/learn_from_document_image_valid
    python -m experiments.learn_kernel --config=configs/learn_from_document_image.py \
        --config.model.padding=same --workdir=runs/learn_from_document_image_same

"valid" gives 4 equations for the 9 weights: the patch matrix has rank 4, so
5 directions of the kernel are invisible in the outputs, and gradient descent
from zeros ends on the minimum-norm solution, which reproduces the 4 outputs
but is not the document's kernel. "same" gives 16 equations (the zero border
adds 12 windows) of rank 9: the kernel is determined and recovered. Everything
not set here is as in configs/learn_document_kernel.py.
"""

from configs import learn_document_kernel


def get_config():
    c = learn_document_kernel.get_config()
    # The single input: the document's 4x4 image (values 0 to 20).
    c.data.source = "document_image"
    # One pair: the image and its convolution with the document's kernel.
    c.data.num_pairs = 1
    # The document's image is 4x4.
    c.data.image_size = 4
    # The question of this experiment: "valid" (2x2 output, 4 equations) or
    # "same" (4x4 output, 16 equations).
    c.model.padding = "valid"
    # Heavy-ball momentum: the loss's curvature spans 8 to 1200 on this image
    # (pixels up to 20), too wide for plain gradient descent to be quick.
    c.optimizer.name = "momentum"
    # Below 2 (1 + momentum) / 1200, the stability limit for "valid".
    c.optimizer.learning_rate = 1e-3
    # Heavy-ball momentum coefficient.
    c.optimizer.momentum = 0.9
    # Step budget, steps per jitted lax.scan (and per metrics row), steps
    # between checkpoints.
    c.train.update(max_steps=2000, chunk_steps=20, checkpoint_every=200)
    # "valid" never reaches kernel_rtol (the kernel is not determined): stop
    # when the 4 outputs are fitted exactly instead, loss 1e-15 of its start.
    c.train.loss_rtol = 1e-15
    return c
