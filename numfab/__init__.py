"""numfab application layer: the `numfab` command line."""

__all__ = ["__version__"]
__version__ = "0.1.0"
