"""Experiment scripts: thin wrappers over tested library functions."""
