"""Reproducible neural-network basics studies: KMNIST classifiers, the 9-point
checkerboard MLP, and hidden-unit dynamics of recurrent networks."""

__version__ = "0.1.0"
