"""vsent: visual sentiment prediction."""
__version__ = "0.1.0"
