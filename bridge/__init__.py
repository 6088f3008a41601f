"""A Matrix application service bridging a professional network into Matrix."""

__version__ = "0.1.0"
