"""Test-wide settings. Keras must run on TensorFlow: on JAX it would compare lax
with itself, so the backend is forced before anything imports Keras."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import pytest

from jconv._spec import IMPL_CHOICES, IMPL_NAMES

jax.config.update("jax_numpy_rank_promotion", "raise")

# Scripts that tests run in subprocesses (they need XLA_FLAGS set before JAX
# starts); not test modules, so `--doctest-modules` must not import them.
collect_ignore_glob = ["_sharded*.py"]


@pytest.fixture(params=IMPL_NAMES)
def impl(request):
    """Every implementation jconv offers; a test that takes `impl` runs once each."""
    return request.param


@pytest.fixture(params=IMPL_CHOICES)
def any_impl(request):
    """Every value `impl` accepts, `"auto"` too: for conv2d's reference grid.
    (Elsewhere `auto`'s output is the lax or the einsum program, which the
    `impl` fixture runs; its mixed derivatives are tested in test_auto.py.)"""
    return request.param
