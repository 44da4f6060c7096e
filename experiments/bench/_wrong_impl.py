"""A backend whose answer is wrong on purpose, for the tests: every output is
zeros, an error of exactly 1 against any nonzero reference.

A test points an implementation at it (`_worker.BACKENDS`, which the
orchestrator sends to the workers) to show that a wrong answer is recorded
with its error and never timed, and that it fails the run for a jconv row but
not for a peer's.
"""

from __future__ import annotations

import numpy as np

from experiments.bench._cases import ConvCase, output_names
from experiments.bench._impl import Prepared


def meta() -> dict:
    return {"wrong_on_purpose": True}


def prepare(impl: str, case: ConvCase, mode: str, dtype: str, arrays) -> Prepared:
    shapes = {"y": case.out_shape, "dx": case.x_shape, "dk": case.kernel_shape}

    def outputs():
        return {n: np.zeros(shapes[n], np.float32) for n in output_names(mode)}

    def run(n):
        raise AssertionError("a wrong answer must not be timed")

    return Prepared(outputs=outputs, run=run, arg_bytes=0)
