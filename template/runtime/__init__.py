"""blockgate's Python runtime: loads and runs Custom Python Blocks behind a CBOR frame channel."""

__version__ = "0.2.0"
