"""The document's worked example: its 4x4 image and 3x3 kernel, computed with
both implementations under "valid" and "same", next to what the document
claims, with its errata (see jconv.document).

    python -m experiments.learn_kernel --config=configs/document_example.py \
        --workdir=runs/document_example
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    # Which routine of experiments.kernel_learning runs: the worked example.
    c.experiment = "document_example"
    # jconv.conv2d implementations to compute it with: "lax", "einsum".
    c.impls = ("lax", "einsum")
    return c
