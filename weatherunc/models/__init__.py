"""Interpolation models: a GPyTorch Gaussian process and baselines, behind one registry."""
