"""flowers-model: train, tune, export and evaluate the Oxford 102 flower classifier."""

__version__ = "2.5.0"
