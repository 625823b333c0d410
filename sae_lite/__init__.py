"""sae-lite: Top-k sparse autoencoders and their sparsity regularizers, small enough to teach."""

__version__ = "0.1.0"

from sae_lite.errors import SaeLiteError  # noqa: E402

__all__ = ["SaeLiteError", "__version__"]
