"""jconv: differentiable 2D convolution in JAX, twice (lax and einsum)."""

from jconv import document as document
from jconv._conv import conv2d as conv2d
from jconv._conv import conv2d_einsum as conv2d_einsum
from jconv._conv import conv2d_lax as conv2d_lax
from jconv._padding import resolve_padding as resolve_padding

__version__ = "0.1.0"
