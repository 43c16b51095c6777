import numpy as np

from node.imaging import ecc


def test_encode_viterbi_roundtrip_with_noise():
    rng = np.random.default_rng(0)
    for _ in range(40):
        key = rng.bytes(10)
        payload = rng.bytes(8)
        code = ecc.encode(ecc.pack(payload, key))
        assert code.shape == (ecc.CODED_BITS,)
        soft = (2 * code.astype(np.int64) - 1) * 100 + rng.normal(0, 50, code.shape).astype(np.int64)
        bits = ecc.viterbi(soft, ecc.INFO_BITS)
        assert ecc.unpack(bits, key) == payload
        assert ecc.unpack(bits, rng.bytes(10)) is None


def test_viterbi_numba_equals_reference():
    rng = np.random.default_rng(1)
    cases = [rng.integers(-1000, 1000, ecc.CODED_BITS) for _ in range(20)]
    cases += [np.zeros(ecc.CODED_BITS, np.int64), rng.integers(-1, 2, ecc.CODED_BITS)]  # ties
    for soft in cases:
        assert np.array_equal(ecc.viterbi(soft, ecc.INFO_BITS), ecc.viterbi_ref(soft, ecc.INFO_BITS))


def test_corrects_hard_errors():
    rng = np.random.default_rng(2)
    key, payload = rng.bytes(10), rng.bytes(8)
    code = ecc.encode(ecc.pack(payload, key)).astype(np.int64)
    soft = 2 * code - 1
    flip = rng.choice(ecc.CODED_BITS, 8, replace=False)
    soft[flip] *= -1
    assert ecc.unpack(ecc.viterbi(soft, ecc.INFO_BITS), key) == payload


def test_noise_never_decodes():
    rng = np.random.default_rng(3)
    key = rng.bytes(10)
    for _ in range(300):
        soft = rng.integers(-100, 100, ecc.CODED_BITS)
        assert ecc.unpack(ecc.viterbi(soft, ecc.INFO_BITS), key) is None
