"""Rain probabilities: bin probabilities for every model, and their calibration."""
