"""Imaging: canonical luma and verification rendition, integer pHash, Hamming index, DCT watermark.

The public API, importable from the package itself for tools and benches outside the node:
`embed`, `extract`, `extract_all` (the watermark), `phash`, `verification_rendition`.

The watermark's three load on first use (PEP 562): `watermark` pulls scipy's sparse matrices,
the float embedder and the sync template, which importing any other imaging module (the
validators' integer path among them) must not. `phash` and `verification_rendition` are bound eagerly, and must be: a lazy `phash`
would lose to the submodule of the same name once anything imports `node.imaging.phash`.
"""

from __future__ import annotations

from typing import Any

from node.imaging.phash import phash
from node.imaging.rendition import verification_rendition

__all__ = ["embed", "extract", "extract_all", "phash", "verification_rendition"]

_WATERMARK = frozenset({"embed", "extract", "extract_all"})


def __getattr__(name: str) -> Any:
    if name in _WATERMARK:
        from node.imaging import watermark

        return getattr(watermark, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
