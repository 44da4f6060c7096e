"""What the benchmark ran on, and the accelerator peaks it is measured against."""

from __future__ import annotations

import os
import platform
import sys

# Dense (no structured sparsity) tensor-core peaks from NVIDIA's datasheets,
# TFLOP/s. The float32 figure is TF32's: JAX's default precision runs float32
# convolutions in TF32 on these cards. Order matters: the first key found in
# the device kind wins ("H100 PCIe" before "H100").
GPU_PEAK_TFLOPS = {
    "H200": {"bfloat16": 989.4, "float32": 494.7},
    "H100 PCIe": {"bfloat16": 756.0, "float32": 378.0},
    "H100": {"bfloat16": 989.4, "float32": 494.7},
    "A100": {"bfloat16": 312.0, "float32": 156.0},
    "L4": {"bfloat16": 121.0, "float32": 60.0},
}


def gpu_peak_tflops(device_kind: str, dtype: str) -> float | None:
    """The card's dense peak for `dtype`, or None for a card not in the table.

    Example:
      >>> gpu_peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16")
      989.4
      >>> gpu_peak_tflops("NVIDIA H100 PCIe", "bfloat16")
      756.0
      >>> gpu_peak_tflops("cpu", "float32") is None
      True
    """
    kind = device_kind.upper()
    for name, peaks in GPU_PEAK_TFLOPS.items():
        if all(part.upper() in kind for part in name.split()):
            return peaks.get(dtype)
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# /proc/cpuinfo flags that decide the peers' speed and answers on the CPU:
# without AVX512_BF16 or AMX (amx_tile: every AMX CPU has it), bfloat16 is
# converted to float32 and rounded differently.
CPU_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
)
# On Linux, TensorFlow turns oneDNN on by default only on CPUs with one of these
# (`DefaultOneDnnPolicy` in tensorflow/core/util/port.cc); elsewhere it is off
# unless TF_ENABLE_ONEDNN_OPTS=1.
ONEDNN_DEFAULT_FEATURES = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_features(flags: set[str] | None = None) -> dict[str, bool]:
    """Which of `CPU_FEATURES` the CPU has (`flags`: /proc/cpuinfo's), False
    where absent or unreadable.

    Example:
      >>> cpu_features({"avx2", "fma", "sse2"})["avx512f"]
      False
    """
    flags = _cpu_flags() if flags is None else flags
    return {name: name in flags for name in CPU_FEATURES}


def tensorflow_onednn() -> dict:
    """TensorFlow's oneDNN state; call it in a process that runs TensorFlow.

    `enabled` is TensorFlow's own answer, `_pywrap_util_port.IsMklEnabled()`:
    the C++ `tensorflow::IsMklEnabled` its kernels consult (built with oneDNN,
    then TF_ENABLE_ONEDNN_OPTS if set, else the CPU default above).
    `tf.sysconfig.get_build_info()` cannot tell: it names CUDA, ROCm and
    TensorRT only. The module is private; should it go, the same rule is
    applied here, and `enabled_from` says which answered.
    """
    env = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    features = cpu_features()
    default = any(features[name] for name in ONEDNN_DEFAULT_FEATURES)
    state = {"TF_ENABLE_ONEDNN_OPTS": env, "default_on_this_cpu": default}
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        override = {"0": False, "false": False, "1": True, "true": True}
        enabled = override.get((env or "").lower(), default)
        return state | {
            "enabled": enabled,
            "enabled_from": "TF_ENABLE_ONEDNN_OPTS, else the CPU default",
        }
    return state | {
        "enabled": bool(_pywrap_util_port.IsMklEnabled()),
        "enabled_from": "tensorflow IsMklEnabled()",
    }


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def describe_host() -> dict:
    """CPU model and features, core count, memory and load (the machine may be
    shared)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cpu_features": cpu_features(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "load_average_at_start": None if load is None else [round(v, 2) for v in load],
    }
