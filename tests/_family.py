"""A convolution under test with its float64 reference and its grid's data:
what the reference, FFT and complex tests of every grid share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from _checks import assert_batch_consistent, check_grads_float64
from _data import conv_kwargs, make_arrays
from _tol import assert_matches_reference
from reference import reference_conv2d

import jconv


class Family(NamedTuple):
    """`fn` (a jconv convolution), its float64 `reference`, and its grid's
    data: `make_arrays(case, *, integer, seed, batch)` gives `(x, kernel,
    bias)`, `kwargs(case)` the keyword arguments of both."""

    fn: Callable
    reference: Callable
    make_arrays: Callable
    kwargs: Callable

    def assert_matches_reference(self, case, impl, *, float64):
        """`fn` with `impl` at precision "highest" against the reference on
        `case`'s data (`_tol.assert_matches_reference`: float32, and with
        `float64` float64 too). Returns the float32 output, `x` and `kernel`."""
        x, kernel, bias = self.make_arrays(case)
        ours = functools.partial(self.fn, impl=impl)
        y = assert_matches_reference(
            ours, self.reference, x, kernel, bias, float64=float64, **self.kwargs(case)
        )
        return y, x, kernel

    def check(self, *, float64):
        """`assert_matches_reference` as a grid's `check(case, impl)`
        (`_grid.Grid.reference_tests`)."""
        return functools.partial(self.assert_matches_reference, float64=float64)

    def check_grads(self, case, impl, **arrays):
        """`_checks.check_grads_float64` of `fn` with `impl` in its input,
        kernel and bias, at `make_arrays(case, **arrays)`."""
        kw = self.kwargs(case)
        f = lambda x, kernel, bias: self.fn(x, kernel, bias, impl=impl, **kw)
        check_grads_float64(f, self.make_arrays(case, **arrays))

    def assert_batch_consistent(self, case, impl, *, seed, vmap=True):
        """`_checks.assert_batch_consistent` of `fn` with `impl` on `case`'s
        small-integer data drawn with `seed`."""
        x, kernel, bias = self.make_arrays(case, integer=True, seed=seed)
        kw = self.kwargs(case)
        f = lambda x: self.fn(x, kernel, bias, impl=impl, **kw)
        assert_batch_consistent(f, x, vmap=vmap)


# `conv2d` on `_grid`'s default grid.
CONV2D = Family(jconv.conv2d, reference_conv2d, make_arrays, conv_kwargs)
