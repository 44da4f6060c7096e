"""Test-wide settings. Keras must run on TensorFlow: on JAX it would compare lax
with itself, so the backend is forced before anything imports Keras."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One compute thread per framework in each pytest worker (`make test` runs one
# worker per core): two workers each spinning a thread pool per core made
# the suite ~15% slower in CPU time. Set before any framework starts, and
# inherited by the subprocesses tests start; a thread count of the caller's
# own wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# XLA's LLVM backend at optimization level 0: compiling is most of the
# suite's time (each test compiles its programs once), and this takes a third
# off it. XLA's own passes (layouts, fusion, the convolution canonicalization
# test_loop_layout checks) and its library kernels (Eigen, oneDNN) are as ever;
# only the loops LLVM generates are less optimized, which the suite's bounds
# allow (exact comparisons are of small-integer sums, exact at any level, or
# of one program against itself).
os.environ["XLA_FLAGS"] = " ".join(
    [
        os.environ.get("XLA_FLAGS", ""),
        "--xla_cpu_multi_thread_eigen=false",
        "--xla_backend_optimization_level=0",
    ]
).strip()

import jax
import pytest

from jconv._spec import DIRECT_IMPLS

jax.config.update("jax_numpy_rank_promotion", "raise")

# Scripts that tests run in subprocesses (they need XLA_FLAGS set before JAX
# starts); not test modules, so `--doctest-modules` must not import them.
collect_ignore_glob = ["_sharded*.py"]


@pytest.fixture(params=DIRECT_IMPLS)
def impl(request):
    """Both direct sums of products, `"lax"` and `"einsum"`; a test that takes
    `impl` runs once each, bounded by the length of its sums (`_tol.py`).
    `"fft"` has its own error bound and its own file, test_fft.py, which runs
    it on these same grids."""
    return request.param


@pytest.fixture(params=("auto", *DIRECT_IMPLS))
def any_impl(request):
    """`impl` and `"auto"`: for conv2d's reference grid, at `precision=
    "highest"`, where `auto` keeps to the direct sums. (At the default
    precision `auto` may also run the FFT or Winograd: its plans are tested
    in test_auto.py, test_fft.py and test_winograd.py.)"""
    return request.param
