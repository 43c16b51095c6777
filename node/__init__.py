"""imagechain: a blockchain node for image copyright."""

__version__ = "0.1.0"
