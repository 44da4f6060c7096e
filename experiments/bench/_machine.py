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


def _cpu_features() -> list[str]:
    """The vector extensions that decide CPU convolution speed (bfloat16 above
    all: without AVX512_BF16 or AMX, bfloat16 is converted to float32)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in flags]
    except OSError:
        pass
    return []


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
    """CPU model, core count, memory and load (the machine may be shared)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cpu_features": _cpu_features(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "load_average_at_start": None if load is None else [round(v, 2) for v in load],
    }
