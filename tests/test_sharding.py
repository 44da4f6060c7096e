"""conv2d on inputs sharded over 8 (simulated) devices equals one device.

The device count is fixed when JAX starts, so the check runs in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8."""

from pathlib import Path

import pytest
from _devices import cpu_env, run_script

from jconv._onednn import status


@pytest.fixture(scope="module")
def sharded_results():
    script = Path(__file__).with_name("_sharded_conv.py")
    return run_script(script, env=cpu_env(8))


def _convolutions(results):
    return [r for r in results if "impl" in r]


def test_every_combination_ran(sharded_results):
    rows = _convolutions(sharded_results)
    impls = 3 if status().available else 2
    combos = {(r["impl"], r["mesh"]) for r in rows}
    assert len(combos) == 3 * impls and len(rows) == 9 * impls
    assert all(r["input_devices"] == 8 for r in rows)


def test_onednn_sharded_equals_single_device(sharded_results):
    """Explicit `impl="onednn"` on every mesh: the answer of one device."""
    rows = [r for r in _convolutions(sharded_results) if r["impl"] == "onednn"]
    assert len(rows) == (9 if status().available else 0)
    for r in rows:
        assert r["max_abs_diff"] <= 1e-5, r


def test_auto_keeps_a_sharded_batch_sharded(sharded_results):
    """With 8 devices `auto` keeps the XLA formulations (a custom call is not
    partitioned): the compiled learning step on a batch-sharded input
    all-reduces the kernel and bias gradients and gathers no activation."""
    (step,) = [r for r in sharded_results if r.get("step") == "auto"]
    assert step["onednn_calls"] == 0, step
    assert step["all_gathers"] == 0, step
    assert step["all_reduces"] >= 1, step


@pytest.mark.parametrize("mesh", ["batch", "height", "batch_x_height"])
def test_sharded_equals_single_device(sharded_results, impl, mesh):
    rows = [
        r
        for r in _convolutions(sharded_results)
        if r["impl"] == impl and r["mesh"] == mesh
    ]
    assert rows
    for r in rows:
        # Same arithmetic, possibly split differently: float32 roundoff only.
        assert r["max_abs_diff"] <= 1e-5, r
