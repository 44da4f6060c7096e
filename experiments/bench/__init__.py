"""The convolution benchmark: jconv against raw lax, Keras/TensorFlow, PyTorch.

`run_benchmark(config, workdir)` is what `python -m experiments.benchmark`
calls; each implementation runs in its own worker process (`_worker`).
"""

from experiments.bench._cases import SHAPES as SHAPES
from experiments.bench._cases import ConvCase as ConvCase
from experiments.bench._cases import make_case as make_case
from experiments.bench._machine import gpu_peak_tflops as gpu_peak_tflops
from experiments.bench._report import failures as failures
from experiments.bench._run import IMPLS as IMPLS
from experiments.bench._run import check_config as check_config
from experiments.bench._run import run_benchmark as run_benchmark
