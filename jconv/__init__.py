"""jconv: differentiable convolution in JAX in 1, 2 and 3 spatial dimensions,
twice (lax and einsum), plus
the FFT and Winograd fast algorithms and, on the CPU, oneDNN's kernels called
from inside XLA (`impl="onednn"`, `onednn_status()`).

The public surface is what this file names. The private modules are one
concept each; four of them are shared, and only from these does another
module import underscore names: `_padding` and `_spec` (every argument's
reading and checks), `_conv` (the keyword arguments of every public
function, described once, and the checks and traced body every convolution
runs) and `_layers` (the layer descriptions, from which both frontends'
module arguments derive: `nnx`/`linen` -> `_layers` -> `_keras_io` -> Keras,
one way).
"""

from jconv import document as document
from jconv import learn as learn
from jconv import linen as linen
from jconv import nnx as nnx
from jconv._arithmetic import conv_output_shape as conv_output_shape
from jconv._arithmetic import (
    conv_transpose_output_shape as conv_transpose_output_shape,
)
from jconv._arithmetic import resolve_padding as resolve_padding
from jconv._arithmetic import (
    resolve_transpose_padding as resolve_transpose_padding,
)
from jconv._conv import conv as conv
from jconv._conv import conv1d as conv1d
from jconv._conv import conv2d as conv2d
from jconv._conv import conv2d_einsum as conv2d_einsum
from jconv._conv import conv2d_lax as conv2d_lax
from jconv._conv import conv3d as conv3d
from jconv._depthwise import depthwise_conv as depthwise_conv
from jconv._depthwise import depthwise_conv1d as depthwise_conv1d
from jconv._depthwise import depthwise_conv2d as depthwise_conv2d
from jconv._depthwise import depthwise_conv3d as depthwise_conv3d
from jconv._keras_io import to_keras as to_keras
from jconv._onednn import onednn_status as onednn_status
from jconv._separable import separable_conv as separable_conv
from jconv._separable import separable_conv1d as separable_conv1d
from jconv._separable import separable_conv2d as separable_conv2d
from jconv._separable import separable_conv3d as separable_conv3d
from jconv._torch_io import to_torch as to_torch
from jconv._transpose import conv1d_transpose as conv1d_transpose
from jconv._transpose import conv2d_transpose as conv2d_transpose
from jconv._transpose import conv3d_transpose as conv3d_transpose
from jconv._transpose import conv_transpose as conv_transpose
from jconv.nnx import from_keras as from_keras
from jconv.nnx import from_torch as from_torch

__version__ = "0.1.0"
