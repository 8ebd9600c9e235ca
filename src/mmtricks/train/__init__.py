"""Training: the Fabric loop, checkpoints, greedy soup, metrics and the training tricks."""
