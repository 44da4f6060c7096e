"""Random inputs for a grid case."""

from __future__ import annotations

import numpy as np


def random_arrays(case, c_in, k_shape, c_out, *, integer=False, seed=0, batch=2):
    """`x` with `c_in` channels in `case`'s layout and size, a `k_shape` kernel
    and a `(c_out,)` bias (None unless `case["bias"]`), drawn in that order."""
    rng = np.random.default_rng(seed)
    h, w = case["hw"]
    channels_first = case["data_format"] == "channels_first"
    shape = (batch, c_in, h, w) if channels_first else (batch, h, w, c_in)
    if integer:
        # Small integers: every product and partial sum is exact in float32,
        # so any correct implementation must agree to the last bit.
        draw = lambda s: rng.integers(-3, 4, s).astype(np.float32)
    else:
        draw = lambda s: rng.standard_normal(s).astype(np.float32)
    x, kernel, bias = draw(shape), draw(k_shape), draw((c_out,))
    return x, kernel, (bias if case.get("bias") else None)


def make_arrays(case, *, batch=2, c_in=4, c_out=6, integer=False, seed=0):
    k_shape = (*case["kernel"], c_in // case["groups"], c_out)
    return random_arrays(
        case, c_in, k_shape, c_out, integer=integer, seed=seed, batch=batch
    )


def pick(case, keys):
    """The entries of `case` named in `keys`, as keyword arguments."""
    return {k: case[k] for k in keys}


def conv_kwargs(case):
    return pick(case, ("strides", "padding", "dilation_rate", "groups", "data_format"))
