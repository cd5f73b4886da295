"""MTA-STS (RFC 8461) policy daemon for Postfix."""

__version__ = "0.1.0"
__all__ = ["__version__"]
