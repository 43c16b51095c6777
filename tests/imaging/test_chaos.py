import numpy as np
import pytest

from node.imaging import chaos


@pytest.mark.parametrize(
    "key", [bytes(10), bytes(range(10)), b"\xff" * 10, bytes.fromhex("0123456789abcdef0f1e")]
)
def test_fixed_point_map_numba_equals_reference(key):
    x0, y0 = chaos.initial_conditions(key)
    for s0 in (x0, y0):
        ref = chaos.sequence_ref(s0, 2000)
        assert np.array_equal(chaos.sequence(s0, 2000), ref)
        assert np.array_equal(chaos.shuffle(ref), chaos.shuffle_ref(ref))


def test_step_is_the_logistic_map():
    x = 0x4000_0000_0000_0000  # 0.25
    y = chaos.step_ref(x) / 2**64
    mu = chaos.MU_Q61 / 2**61
    assert abs(y - mu * 0.25 * 0.75) < 1e-15


def test_layout_is_a_balanced_keyed_assignment():
    unit, sign = chaos.layout(bytes(range(10)), 15360, 208)
    counts = np.bincount(unit, minlength=208)
    assert counts.min() == 15360 // 208 and counts.max() == counts.min() + 1
    assert set(np.unique(sign)) == {-1, 1}
    u2, _ = chaos.layout(bytes(range(1, 11)), 15360, 208)
    assert np.mean(unit == u2) < 0.05
    u3, _ = chaos.layout(bytes(range(10)), 15360, 208)
    assert np.array_equal(unit, u3)


def test_one_bit_of_key_changes_everything():
    k1 = bytearray(10)
    k2 = bytearray(10)
    k2[9] = 1
    a = chaos.scramble_bits(bytes(k1), 512)
    b = chaos.scramble_bits(bytes(k2), 512)
    assert 0.35 < np.mean(a != b) < 0.65


def test_key_length_checked():
    with pytest.raises(ValueError):
        chaos.initial_conditions(b"short")
