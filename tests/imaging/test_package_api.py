"""`node.imaging`'s public API, importable from the package itself (benches and tools use it)."""

from __future__ import annotations

import subprocess
import sys

import node.imaging
from node.imaging import embed, extract, extract_all, phash, verification_rendition
from tests.imaging.conftest import natural_image


def test_the_package_exports_the_functions() -> None:
    from node.imaging.phash import phash as phash_function
    from node.imaging.rendition import verification_rendition as rendition_function
    from node.imaging.watermark import embed as embed_function
    from node.imaging.watermark import extract as extract_function
    from node.imaging.watermark import extract_all as extract_all_function

    # `phash` is also a submodule's name: importing the submodule must not replace the function.
    assert phash is phash_function and node.imaging.phash is phash_function
    assert verification_rendition is rendition_function
    assert (embed, extract, extract_all) == (embed_function, extract_function, extract_all_function)


def test_the_exports_work_together() -> None:
    image = natural_image(5, 384, 512)
    key, payload = bytes(range(10)), bytes(range(8))
    marked = embed(image, key, payload)
    assert extract(marked, key) == payload and extract_all(marked, key) == [payload]
    assert verification_rendition(marked).shape == (256, 256)
    assert bin(phash(marked) ^ phash(image)).count("1") <= 8


def test_the_package_loads_the_watermark_only_when_asked() -> None:
    """The validators' integer path imports `node.imaging` too; it must not pay for the embedder."""
    code = (
        "import sys, node.imaging\n"
        "assert 'node.imaging.watermark' not in sys.modules and 'scipy.sparse' not in sys.modules\n"
        "node.imaging.embed\n"
        "assert 'node.imaging.watermark' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
