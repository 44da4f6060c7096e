"""Test-wide settings. Keras must run on TensorFlow: on JAX it would compare lax
with itself, so the backend is forced before anything imports Keras."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
