"""Training of neural processes: configuration, on-the-fly task sampling, one training loop."""
