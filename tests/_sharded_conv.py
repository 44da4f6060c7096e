"""Run in a subprocess with 8 host devices (see test_sharding.py): sharded
convolutions against the same convolution on one device. Prints one JSON line."""

import json
import os
import sys

assert "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import jconv  # noqa: E402
from jconv._onednn import status  # noqa: E402

# oneDNN where the extension is loaded: explicit, it runs on each device's
# shard after XLA gathers what the custom call needs (not partitioned).
IMPLS = ("lax", "einsum", *(("onednn",) if status().available else ()))


def learning_step(x_sharded, kernel, bias):
    """The compiled HLO of a learning step's gradient, `impl="auto"`, on a
    batch-sharded input: how many all-gathers, all-reduces and oneDNN calls
    it holds."""

    def loss(x, kernel, bias):
        return (jconv.conv2d(x, kernel, bias, padding="same") ** 2).sum()

    step = jax.jit(jax.grad(loss, (1, 2)))
    text = step.lower(x_sharded, kernel, bias).compile().as_text()
    return {
        "step": "auto",
        "all_gathers": text.count("all-gather("),
        "onednn_calls": text.count('custom_call_target="jconv_onednn_conv"'),
        "all_reduces": text.count("all-reduce("),
    }


def main():
    devices = np.array(jax.devices())
    assert devices.size == 8, devices
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 32, 24, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    meshes = {
        "batch": (Mesh(devices, ("data",)), P("data")),
        "height": (Mesh(devices, ("h",)), P(None, "h")),
        "batch_x_height": (Mesh(devices.reshape(2, 4), ("data", "h")), P("data", "h")),
    }
    settings = [
        {"padding": "same"},
        {"padding": "valid", "strides": 2},
        {"padding": ((2, 1), (0, 3)), "dilation_rate": 2},
    ]
    results = []
    for impl in IMPLS:
        for kwargs in settings:
            f = jax.jit(
                lambda x, k, b, kwargs=kwargs, impl=impl: jconv.conv2d(
                    x, k, b, impl=impl, precision="highest", **kwargs
                )
            )
            with jax.default_device(jax.devices()[0]):
                expected = np.asarray(f(x, kernel, bias))
            for name, (mesh, spec) in meshes.items():
                x_sharded = jax.device_put(x, NamedSharding(mesh, spec))
                y = f(x_sharded, kernel, bias)
                results.append(
                    {
                        "impl": impl,
                        "kwargs": repr(kwargs),
                        "mesh": name,
                        "input_devices": len(x_sharded.sharding.device_set),
                        "max_abs_diff": float(np.abs(np.asarray(y) - expected).max()),
                    }
                )
    mesh, spec = meshes["batch"]
    results.append(
        learning_step(jax.device_put(x, NamedSharding(mesh, spec)), kernel, bias)
    )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
