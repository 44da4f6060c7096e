"""Learning a convolution from input/output pairs, and the closed-form reference.

Public names for the experiments (`experiments/learn_kernel.py`) and for users,
for kernels of every spatial rank (1-D signals, 2-D images, 3-D volumes; the
rank is read from the kernel's shape):

- `patch_matrix`, `lstsq`, `LstsqResult`: the convolution as a matrix acting on
  the flattened kernel, and its minimum-norm least-squares solution, rank and
  null space, in float64; `patch_matrix_jax`, the matrix under `jit`.
- `ConvModel`, `Problem`, `TrainState`, `Metrics`, `loss_fn`, `make_optimizer`,
  `make_schedule`, `init_state`, `make_train_chunk`, `evaluate`: gradient
  descent on stacked problems, one `lax.scan` per chunk of steps;
  `train_step`, one step of it for one problem.
- `problem_specs`, `DATA_AXIS`, `HEIGHT_AXIS`: how stacked problems are split
  over a device mesh (pairs over `"data"`, the first spatial axis, an image's
  rows, over `"height"`).

Example (the document's kernel from 8 random images, plain gradient descent):
  >>> import jax, jax.numpy as jnp
  >>> from jconv import document
  >>> model = ConvModel(kernel_shape=(3, 3, 1, 1))
  >>> true = {"kernel": jnp.asarray(document.KERNEL, jnp.float32)[..., None, None]}
  >>> x = jax.random.normal(jax.random.key(0), (8, 10, 10, 1))
  >>> problem = Problem(x, model.apply(true, x), jnp.ones(8), true)
  >>> stack = jax.tree.map(lambda a: a[None], problem)  # G = 1 problem
  >>> opt = make_optimizer("sgd", 0.3)
  >>> chunk = make_train_chunk(model, opt, 200)
  >>> state, m, losses = chunk(init_state(model, opt, 1), stack)
  >>> bool(m.kernel_max_abs_error[0] < 1e-5)
  True
"""

from jconv._learn import DATA_AXIS as DATA_AXIS
from jconv._learn import HEIGHT_AXIS as HEIGHT_AXIS
from jconv._learn import OPTIMIZERS as OPTIMIZERS
from jconv._learn import SCHEDULES as SCHEDULES
from jconv._learn import ConvModel as ConvModel
from jconv._learn import Metrics as Metrics
from jconv._learn import Problem as Problem
from jconv._learn import TrainState as TrainState
from jconv._learn import evaluate as evaluate
from jconv._learn import init_state as init_state
from jconv._learn import loss_fn as loss_fn
from jconv._learn import make_optimizer as make_optimizer
from jconv._learn import make_schedule as make_schedule
from jconv._learn import make_train_chunk as make_train_chunk
from jconv._learn import patch_matrix_jax as patch_matrix_jax
from jconv._learn import problem_specs as problem_specs
from jconv._learn import train_step as train_step
from jconv._lstsq import LstsqResult as LstsqResult
from jconv._lstsq import lstsq as lstsq
from jconv._lstsq import patch_matrix as patch_matrix
