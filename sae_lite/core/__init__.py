"""The model and its training: the SAE, the selection rules, the proximal view, the penalties, the
loss (dense and sparse backends), `TrainConfig` and `train`, and torchrun."""
