"""SMS encoding and splitting: examples and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import sms
from channels.sms import SmsEncoding

GSM_CHARS = "".join(sms.GSM_BASIC) + "".join(sms.GSM_EXTENSION)


def test_160_gsm7_chars_fit_one_sms():
    plan = sms.plan("a" * 160)

    assert (plan.encoding, plan.part_count, plan.data_coding) == (SmsEncoding.GSM7, 1, 0)


def test_161_gsm7_chars_need_two_parts_of_at_most_153():
    plan = sms.plan("a" * 161)

    assert [p.units for p in plan.parts] == [153, 8]


def test_extension_chars_count_two_septets():
    plan = sms.plan("€" * 80)

    assert (plan.part_count, plan.unit_count, plan.char_count) == (1, 160, 80)
    assert plan.parts[0].payload[:2] == bytes((0x1B, 0x65))


def test_extension_pair_is_never_split_across_parts():
    plan = sms.plan("a" * 152 + "€" + "b" * 10)

    assert plan.parts[0].text == "a" * 152
    assert plan.parts[1].text.startswith("€")


def test_chinese_uses_ucs2_70_then_67():
    assert sms.plan("寻" * 70).part_count == 1
    plan = sms.plan("寻" * 71)

    assert (plan.encoding, plan.data_coding) == (SmsEncoding.UCS2, 8)
    assert [p.units for p in plan.parts] == [67, 4]
    assert plan.parts[0].payload == ("寻" * 67).encode("utf-16-be")


def test_one_non_gsm_char_switches_the_whole_text_to_ucs2():
    assert sms.plan("Hello 世界").encoding is SmsEncoding.UCS2


def test_surrogate_pair_is_never_split():
    plan = sms.plan("a" * 66 + "😀" + "b" * 10)

    assert plan.parts[0].text == "a" * 66
    assert plan.parts[1].text.startswith("😀")
    assert plan.parts[0].units == 66


def test_too_long_text_is_truncated_with_ellipsis_within_the_cap():
    plan = sms.plan("寻人启事" * 100, max_parts=2)

    assert plan.truncated
    assert plan.part_count == 2
    assert plan.text.endswith("…")
    assert plan.summary() == "2 parts, 134 chars (ucs2), truncated"


def test_gsm7_truncation_uses_dots_to_stay_gsm7():
    plan = sms.plan("word " * 100, max_parts=1)

    assert plan.encoding is SmsEncoding.GSM7
    assert plan.text.endswith("...")
    assert plan.unit_count <= 160


def test_summary_for_console_preview():
    assert sms.plan("x" * 200).summary() == "2 parts, 200 chars (gsm7)"


def test_udh_is_six_bytes_with_reference_total_and_sequence():
    assert sms.concat_udh(0x1AB, 3, 2) == bytes((5, 0, 3, 0xAB, 3, 2))


def test_decode_round_trips_encode():
    text = "Hi {you} €5 ~ Ünïcödé?"  # ï is not GSM-7: UCS-2
    for t in (text, "Hi {you} €5 ~ [ok]"):
        plan = sms.plan(t)
        assert sms.decode(plan.payload, plan.data_coding) == t


def test_zero_max_parts_is_refused():
    with pytest.raises(ValueError):
        sms.plan("hi", max_parts=0)


texts = st.one_of(
    st.text(alphabet=GSM_CHARS, min_size=1, max_size=700),
    st.text(min_size=1, max_size=400),
    st.text(alphabet="寻人启事ab€😀 ", min_size=1, max_size=400),
)


@settings(max_examples=150, deadline=None)
@given(text=texts, max_parts=st.integers(min_value=1, max_value=6))
def test_parts_fit_are_nonempty_and_rejoin_to_the_text(text, max_parts):
    plan = sms.plan(text, max_parts)

    limit = plan.encoding.single_limit if plan.part_count == 1 else plan.encoding.part_limit
    assert 1 <= plan.part_count <= max_parts
    assert all(p.text and 0 < p.units <= limit for p in plan.parts)
    assert all(len(p.payload) <= 140 for p in plan.parts) or plan.encoding is SmsEncoding.GSM7
    assert "".join(p.text for p in plan.parts) == plan.text
    if not plan.truncated:
        assert plan.text == text
    else:
        assert plan.text.endswith(("…", "..."))
        assert plan.original_char_count == len(text)


@settings(max_examples=100, deadline=None)
@given(text=texts)
def test_encoded_parts_decode_back_to_their_text(text):
    plan = sms.plan(text, max_parts=10)

    for part in plan.parts:
        assert sms.decode(part.payload, plan.data_coding) == part.text
