"""medcodec: lossless compression of medical images with small, integer-exact neural predictors."""

__version__ = "0.1.0"
