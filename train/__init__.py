"""onepass.train: config, dataset and augmentation, loss balancing, the training loop, evaluation."""
