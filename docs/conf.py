"""Sphinx configuration of jconv's documentation (`make docs`).

The generator is Sphinx with MyST (myst-parser) for Markdown pages and the
Furo theme: chosen to match JAX, Flax and optax, whose documentation jconv's
users already read (Sphinx + MyST), and for `sphinx.ext.autodoc`, which
builds the API reference from our Google-style docstrings through
`sphinx.ext.napoleon`. The build is strict: `make docs` runs
`sphinx-build -E -W --keep-going -n` (every warning, unresolved
cross-references included, fails it), then `docs/check_api.py`. No
intersphinx: python.org, numpy.org and the JAX site are not reachable where
the docs are built, so references to third-party types are listed in
`nitpick_ignore` instead.
"""

import sys
from pathlib import Path

import jconv

# Local extensions (docs/_ext): jconv_docstrings reads the docstrings'
# conventions (`Shapes (...):` blocks, wrapped name lists) before napoleon;
# jconv_figures draws the figures from jconv's own results into
# docs/_generated/ when the build starts.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "jconv"
author = "jconv authors"
copyright = "jconv authors"
release = jconv.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "jconv_docstrings",
    "jconv_figures",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated"]

# Docstrings write code in single backticks, Markdown style: show them as
# code (not as italic "title references", reST's default role).
default_role = "literal"

# -- autodoc / napoleon -------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# The defaults as values, not source text: the convolutions' signatures are
# built at import (`jconv._conv`), and autodoc cannot read their source
# ("error while formatting arguments ... pop from empty list").
autodoc_preserve_defaults = False
autosummary_generate = False

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# One entry per line as written: `x, kernel, bias: as for conv2d` stays one
# entry, not one copy of its description per name.
napoleon_use_param = False
# `Attributes:` (the Linen layers' fields, the learn dataclasses') rendered
# as `Args:` are: a list of `name -- description`, not one `.. attribute::`
# object per entry (an entry may name several fields).
napoleon_custom_sections = [("Attributes", "params_style")]

# -- MyST ---------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- HTML ---------------------------------------------------------------------
html_theme = "furo"
html_title = f"jconv {release}"

# -- nitpicky (-n) ------------------------------------------------------------
# Third-party types in signatures and docstrings: without intersphinx (not
# reachable offline) they have no target to link to.
nitpick_ignore = [
    ("py:class", name)
    for name in (
        # JAX and NumPy arrays and types.
        "jax.Array",
        "jax.jaxlib._jax.Array",
        "numpy.ndarray",
        "numpy.number",
        "numpy.bool",
        # Flax: the NNX random streams (annotated as the string "nnx.Rngs"),
        # and the `parent` field every Linen module has.
        "nnx.Rngs",
        "flax.linen.module.Module",
        "flax.core.scope.Scope",
        "flax.linen.module._Sentinel",
        # optax's optimizer type (`jconv.learn.make_optimizer`).
        "optax._src.base.GradientTransformation",
        "optax._src.base.GradientTransformationExtraArgs",
        # The standard library.
        "collections.abc.Callable",
    )
]
