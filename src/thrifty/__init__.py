"""thrifty: efficient-AI papers as reusable PyTorch components with honest CPU-scale reproductions.

Methods live in subpackages (``thrifty.longhorn``, ``thrifty.steepgs``, ...) and register themselves;
``thrifty.core`` holds what they share.
"""

from thrifty.core.registry import Method, get_method, list_methods, register_method

__version__ = "0.1.0"

__all__ = ["Method", "__version__", "get_method", "list_methods", "register_method"]
