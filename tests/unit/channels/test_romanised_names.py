"""Names survive in every language: the English texts carry a Chinese name romanised (surname
first, tones off) and stay GSM-7; an SMS that must be cut drops clothing, height and link
before it shortens the place, and never cuts the name, age or tip line. Property tests over
random Chinese names, places and clothing of realistic lengths."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels import messages, romanise, sms
from channels.messages import MessageKind
from ops.platform.channel_settings import SMS_MAX_PARTS
from tests.peers.samples import sample_content

HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
SURNAMES = st.sampled_from(["林", "王", "张", "欧阳", "司马", "单", "曾", "吕", "诸葛", "陈"])
NAMES = st.builds(lambda s, g: s + g, SURNAMES, st.text(HAN, min_size=1, max_size=2))
PLACES = st.text(HAN, min_size=2, max_size=16)
CLOTHING = st.text(st.one_of(HAN, st.sampled_from("，、 ")), max_size=60)
LINK = "https://alerts.gz.gov.cn/c/0a4f6f9e-5d1c-4c55-9f8e-3b7d2a1c9e42"


def test_known_names_are_surname_first_without_tones():
    assert romanise.name("林小雨") == "Lin Xiaoyu"
    assert romanise.name("欧阳娜娜") == "Ouyang Nana"
    assert romanise.name("单雄信") == "Shan Xiongxin"  # the surname's reading, not 单 dan
    assert romanise.name("曾小贤") == "Zeng Xiaoxian"
    assert romanise.name("王西安") == "Wang Xi'an"
    assert romanise.name("Lily Chen") == "Lily Chen"
    assert romanise.text("广州市天河区北京路") == "Guangzhou Shi Tianhe Qu Beijing Lu"
    assert romanise.text("红色外套，蓝色裤子") == "Hongse Waitao, Lanse Kuzi"


def test_the_reported_message_keeps_the_name_in_english():
    """Was: "MISSING CHILD ALERT: , 6-year-old boy, about 115 cm tall..." (name cut)."""
    content = sample_content(child_name="林小雨", deep_link=LINK)
    m = messages.render(content, "en")
    assert m.sms_text.startswith("MISSING CHILD ALERT: Lin Xiaoyu, 6-year-old boy")
    assert sms.is_gsm7(m.sms_text) and m.title == "Missing child alert: Lin Xiaoyu"
    assert "Wangjing" in m.sms_text, "the place, romanised"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(name=NAMES, place=PLACES, clothing=CLOTHING, age=st.integers(0, 17))
def test_every_sms_keeps_name_age_place_and_tip_line(name, place, clothing, age):
    content = sample_content(
        child_name=name, last_seen_place=place, clothing=clothing, age_years=age, deep_link=LINK
    )
    for language in ("zh-CN", "en"):
        m = messages.render(content, language, sms_max_parts=SMS_MAX_PARTS)
        assert not sms.plan(m.sms_text, max_parts=SMS_MAX_PARTS).truncated
        shown_name = name if language == "zh-CN" else romanise.name(name)
        shown_place = place if language == "zh-CN" else romanise.text(place)
        assert shown_name in m.sms_text, (language, m.sms_text)
        assert shown_place in m.sms_text, (language, m.sms_text)
        assert (f"{age}岁" if language == "zh-CN" else f"{age}-year-old") in m.sms_text
        assert "110" in m.sms_text
        if language == "en":
            assert sms.is_gsm7(m.sms_text), m.sms_text
            assert romanise.has_han(m.title + m.body + m.sms_text) is False


@settings(max_examples=200, deadline=None)
@given(name=NAMES, kind=st.sampled_from(list(MessageKind)))
def test_every_kind_names_the_child_in_english(name, kind):
    m = messages.render(sample_content(child_name=name, kind=kind), "en")
    assert romanise.name(name) in m.title and not romanise.has_han(m.sms_text)
