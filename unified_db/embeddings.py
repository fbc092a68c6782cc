"""Embedding functions: the protocol, and a built-in one that needs no model.

An embedder is any callable from text to a list of floats (``Embedder``). unified_db
never downloads anything: plug in a real model yourself (docs/vectors.md shows
sentence-transformers and an HTTP API), or use :class:`HashingEmbedder` for tests,
demos and keyword-ish similarity.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .errors import InvalidInputError

_WORD_RE = re.compile(r"\w+", re.UNICODE)


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns a text into a vector of floats (a fixed length per embedder)."""

    def __call__(self, text: str) -> Sequence[float]: ...


class HashingEmbedder:
    """Deterministic embeddings from hashed character n-grams and words (no model).

    Each n-gram of each word (padded with spaces, so prefixes and suffixes count) and each
    whole word is hashed (BLAKE2b, stable across processes and Python versions) to a
    dimension and a sign; the counts are L2-normalised. Texts sharing words or word
    pieces get a high cosine similarity; it knows nothing of synonyms.
    """

    def __init__(
        self, dimensions: int = 384, ngram_sizes: tuple[int, ...] = (3, 4), word_weight: float = 2.0
    ):
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 8 <= dimensions <= 16000:
            raise InvalidInputError(f"dimensions must be an integer from 8 to 16000 (got {dimensions!r})")
        if not ngram_sizes or any(not isinstance(n, int) or n < 1 for n in ngram_sizes):
            raise InvalidInputError(f"ngram_sizes must be positive integers (got {ngram_sizes!r})")
        self.dimensions = dimensions
        self.ngram_sizes = tuple(ngram_sizes)
        self.word_weight = float(word_weight)

    def features(self, text: str) -> list[tuple[str, float]]:
        """The (feature, weight) pairs of *text*: its words and their character n-grams."""
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a string (got {type(text).__name__})")
        normalised = unicodedata.normalize("NFKC", text).casefold()
        out: list[tuple[str, float]] = []
        for word in _WORD_RE.findall(normalised):
            out.append(("w:" + word, self.word_weight))
            padded = f" {word} "
            for n in self.ngram_sizes:
                for i in range(max(1, len(padded) - n + 1)):
                    out.append(("g:" + padded[i : i + n], 1.0))
        return out

    def __call__(self, text: str) -> list[float]:
        vec = [0.0] * self.dimensions
        for feature, weight in self.features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            h = int.from_bytes(digest, "little")
            vec[h % self.dimensions] += weight if (h >> 63) & 1 else -weight
        norm = math.sqrt(sum(x * x for x in vec))
        if norm == 0.0:
            return vec  # empty text: the zero vector (cosine distance to it is undefined)
        return [x / norm for x in vec]


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0.0 when either is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return 0.0 if na == 0 or nb == 0 else dot / (na * nb)
