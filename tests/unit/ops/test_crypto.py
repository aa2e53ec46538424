"""Encryption at rest: values round-trip, tampering is refused, and older Fernet values still
read after the switch to AES-GCM."""

from __future__ import annotations

import pytest

from ops.platform import crypto


def test_a_value_round_trips_and_each_sealing_differs():
    first, second = crypto.encrypt("b" * 64), crypto.encrypt("b" * 64)

    assert crypto.decrypt(first) == crypto.decrypt(second) == "b" * 64
    assert first != second  # a fresh nonce each time: equal tokens do not look equal at rest
    assert b"bbbb" not in first


def test_a_value_sealed_by_fernet_before_the_switch_still_reads():
    old = crypto._fernet().encrypt(b"+8613800138000")

    assert crypto.decrypt(old) == "+8613800138000"


@pytest.mark.parametrize("where", [0, 5, 20, -1])
def test_an_altered_value_is_refused(where):
    sealed = bytearray(crypto.encrypt("secret-token"))
    if where == 0:
        sealed[0] = 0x02  # an unknown version reads as a (broken) Fernet token
    else:
        sealed[where] ^= 0x01

    with pytest.raises(crypto.InvalidToken):
        crypto.decrypt(bytes(sealed))
