"""The convolutional conditional neural process: config, network, interpolator."""
