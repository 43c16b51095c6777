"""What validators recompute from a registration's verification rendition, and nothing else.

A registration carries the 256x256 integer luma rendition of the watermarked image (PROTOCOL
section 10). Every validator recomputes two facts from it and compares them with the claim:

* its pHash (:func:`node.imaging.phash.phash_from_rendition`: exact block means, integer DCT,
  median threshold);
* the 64-bit payload its watermark carries under the chain's key
  (:func:`extract_from_rendition`: integer block DCT, integer sums, fixed-point chaos,
  integer Viterbi, keyed check).

Integer arithmetic only (numba kernels, each with a plain numpy reference beside it and a test
that both agree), so every machine reaches the same verdict. This is the one imaging module the
runtime imports: it loads no scipy and none of the float embedder, sync search or template.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .chaos import layout, scramble_bits
from .dct import block_dct, block_dct_ref
from .ecc import CODED_BITS, INFO_BITS, unpack, viterbi, viterbi_ref
from .phash import low_frequency_energy, phash_from_rendition
from .rendition import RENDITION_SIZE

RENDITION_BYTES = RENDITION_SIZE * RENDITION_SIZE

# Mid-frequency coefficients of each 8x8 block that carry the mark: u + v in {3, 4, 5}. Lower
# bands survive blur better but carry so much host energy that cancelling it costs PSNR; these
# 15 were the best trade measured (JPEG 30, 0.5x resize, median 3x3 all still decode).
BANDS = (3, 4, 5)
POSITIONS: tuple[tuple[int, int], ...] = tuple((u, s - u) for s in BANDS for u in range(s + 1))
US = np.array([p[0] for p in POSITIONS], dtype=np.int64)
VS = np.array([p[1] for p in POSITIONS], dtype=np.int64)
N_BLOCKS = (RENDITION_SIZE // 8) ** 2
N_SLOTS = N_BLOCKS * len(POSITIONS)


SOFT_CLIP_NUM = 3
SOFT_CLIP_DEN = 1

# ---------------------------------------------------------------- the watermark payload


def slot_coefficients(r256: np.ndarray) -> np.ndarray:
    """Integer coefficients of all slots, block-major (int64, units of 1/16)."""
    return block_dct(r256, US, VS).ravel()


def slot_coefficients_ref(r256: np.ndarray) -> np.ndarray:
    """Numpy reference of :func:`slot_coefficients`."""
    return block_dct_ref(r256, US, VS).ravel()


@njit(cache=True, nogil=True)
def _unit_sums_kernel(coeffs, unit, sign, n_units):  # pragma: no cover - compiled
    out = np.zeros(n_units, dtype=np.int64)
    for i in range(coeffs.shape[0]):
        out[unit[i]] += sign[i] * coeffs[i]
    return out


def unit_sums(coeffs: np.ndarray, unit: np.ndarray, sign: np.ndarray, n_units: int) -> np.ndarray:
    """Soft value of each unit: the signed sum of its slots' coefficients (exact int64)."""
    return _unit_sums_kernel(coeffs, unit, sign, n_units)


def unit_sums_ref(coeffs: np.ndarray, unit: np.ndarray, sign: np.ndarray, n_units: int) -> np.ndarray:
    """Numpy reference of :func:`unit_sums`."""
    out = np.zeros(n_units, dtype=np.int64)
    np.add.at(out, unit, sign * coeffs)
    return out


def coded_soft(r256: np.ndarray, key: bytes, reference: bool = False) -> np.ndarray:
    """Descrambled soft values of the 208 coded bits (> 0 favours a coded 1)."""
    unit, sign = layout(key, N_SLOTS, CODED_BITS)
    if reference:
        soft = unit_sums_ref(slot_coefficients_ref(r256), unit, sign, CODED_BITS)
    else:
        soft = unit_sums(slot_coefficients(r256), unit, sign, CODED_BITS)
    x = scramble_bits(key, CODED_BITS)
    return np.where(x == 1, -soft, soft)


def clip_soft(soft: np.ndarray) -> np.ndarray:
    """Limit each soft value to SOFT_CLIP times the lower median magnitude (integer, gain-free).

    Units whose host content was too strong to correct cheaply stay wrong; clipping keeps such a
    confident error from outvoting the code's redundancy. The bound scales with the image's
    own median, so a contrast change scales soft values and bound alike.
    """
    mag = np.sort(np.abs(soft))
    bound = SOFT_CLIP_NUM * mag[(mag.shape[0] - 1) // 2] // SOFT_CLIP_DEN + 1
    return np.clip(soft, -bound, bound)


def extract_from_rendition(r256: np.ndarray, key: bytes) -> bytes | None:
    """The payload carried by a 256x256 verification rendition under key, or None.

    Bit-exact: integer DCT, integer sums, integer Viterbi, fixed-point chaos.
    """
    r = np.asarray(r256)
    if r.shape != (RENDITION_SIZE, RENDITION_SIZE) or r.dtype != np.uint8:
        raise ValueError("expected the 256x256 uint8 verification rendition")
    return unpack(viterbi(clip_soft(coded_soft(r, key)), INFO_BITS), key)


def extract_from_rendition_ref(r256: np.ndarray, key: bytes) -> bytes | None:
    """The same verdict with every numba kernel replaced by its numpy reference."""
    return unpack(viterbi_ref(clip_soft(coded_soft(r256, key, reference=True)), INFO_BITS), key)

# ---------------------------------------------------------------- both facts of a rendition


@dataclass(frozen=True)
class RenditionFacts:
    """What a rendition proves: its pHash, the payload its watermark carries (or None), and how
    much structure the pHash sees (`phash.low_frequency_energy`: 0 for a flat image)."""

    phash: int
    payload: bytes | None
    energy: int


def rendition_facts(rendition: bytes, key: bytes) -> RenditionFacts:
    """The facts of a 65,536-byte rendition (row-major 256x256 luma) under watermark `key`.

    A pure function of its input (about 1 ms): the client may memoise it (`node.core.verification`).
    """
    if len(rendition) != RENDITION_BYTES:
        raise ValueError(f"a rendition is exactly {RENDITION_BYTES} bytes")
    r = np.frombuffer(rendition, dtype=np.uint8).reshape(RENDITION_SIZE, RENDITION_SIZE)
    return RenditionFacts(phash_from_rendition(r), extract_from_rendition(r, key), low_frequency_energy(r))
