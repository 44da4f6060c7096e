"""Random inputs for a grid case."""

from __future__ import annotations

import numpy as np


def make_arrays(case, *, batch=2, c_in=4, c_out=6, integer=False, seed=0):
    rng = np.random.default_rng(seed)
    h, w = case["hw"]
    shape = (
        (batch, c_in, h, w)
        if case["data_format"] == "channels_first"
        else (
            batch,
            h,
            w,
            c_in,
        )
    )
    k_shape = (*case["kernel"], c_in // case["groups"], c_out)
    if integer:
        # Small integers: every product and partial sum is exact in float32,
        # so any correct implementation must agree to the last bit.
        x = rng.integers(-3, 4, shape).astype(np.float32)
        kernel = rng.integers(-3, 4, k_shape).astype(np.float32)
        bias = rng.integers(-3, 4, (c_out,)).astype(np.float32)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
        kernel = rng.standard_normal(k_shape).astype(np.float32)
        bias = rng.standard_normal((c_out,)).astype(np.float32)
    return x, kernel, (bias if case["bias"] else None)


def conv_kwargs(case):
    return {
        k: case[k]
        for k in ("strides", "padding", "dilation_rate", "groups", "data_format")
    }
