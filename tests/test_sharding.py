"""conv2d on inputs sharded over 8 (simulated) devices equals one device.

The device count is fixed when JAX starts, so the check runs in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8."""

from pathlib import Path

import pytest
from _devices import cpu_env, run_script


@pytest.fixture(scope="module")
def sharded_results():
    script = Path(__file__).with_name("_sharded_conv.py")
    return run_script(script, env=cpu_env(8))


def test_every_combination_ran(sharded_results):
    combos = {(r["impl"], r["mesh"]) for r in sharded_results}
    assert len(combos) == 6 and len(sharded_results) == 18
    assert all(r["input_devices"] == 8 for r in sharded_results)


@pytest.mark.parametrize("mesh", ["batch", "height", "batch_x_height"])
def test_sharded_equals_single_device(sharded_results, impl, mesh):
    rows = [r for r in sharded_results if r["impl"] == impl and r["mesh"] == mesh]
    assert rows
    for r in rows:
        # Same arithmetic, possibly split differently: float32 roundoff only.
        assert r["max_abs_diff"] <= 1e-5, r
