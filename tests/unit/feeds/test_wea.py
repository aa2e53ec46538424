"""IPAWS WEA texts: CMAMtext within 90 septets and CMAMlongtext within 360, GSM-7 only, the tip
line whole, for any name, clothing and place."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.feeds import wea
from channels import sms
from channels.messages import AlertStatus, MessageKind
from tests.peers.samples import sample_content

TZ = "Asia/Shanghai"


def test_an_english_alert_names_the_child_and_fits_both_limits():
    content = sample_content(
        child_name="Lin Xiaoyu", clothing="red jacket, blue jeans", last_seen_place="Tianhe Park"
    )
    short, long = wea.texts(content, TZ)
    assert short == "Missing child: Lin Xiaoyu, 6-year-old boy. Call 110"
    assert long.startswith("Missing child: Lin Xiaoyu, 6-year-old boy, about 120 cm, wearing red")
    assert "Last seen 1 May 14:30 (UTC+8) at Tianhe Park. If you have information call 110." in long
    assert long.endswith(content.deep_link)


def test_chinese_text_is_left_out_rather_than_sent_as_ucs2():
    short, long = wea.texts(sample_content(), TZ)  # name, clothing and place all in Chinese
    assert short == "Missing child: 6-year-old boy. Call 110"
    assert sms.is_gsm7(long) and "wearing" not in long
    assert " at SOHO." in long  # the Latin part of 北京市朝阳区望京SOHO附近


def test_accents_and_typographic_punctuation_become_gsm7():
    assert wea.gsm7("Zoé Lín’s “red” coat – size 10…") == 'Zoé Lin\'s "red" coat - size 10...'
    assert wea.gsm7("Li\n\tXiaoming 小明") == "Li Xiaoming"


def test_a_long_name_is_cut_last_and_the_tip_line_never():
    content = sample_content(
        child_name="Alexandria Maximiliana Bartholomew-Featherstonehaugh",
        clothing="a very long description of a yellow raincoat " * 5,
        last_seen_place="the north entrance of the central railway station " * 5,
        tip_line="+86 20 8888 1234",
    )
    short, long = wea.texts(content, TZ)
    assert wea.septets(short) <= 90 and short.endswith("Call +86 20 8888 1234")
    assert wea.septets(long) <= 360 and "call +86 20 8888 1234." in long
    assert "Alexandria Maximiliana" in long


def test_closing_notices_and_drills_say_so():
    found = wea.texts(sample_content(child_name="Lin", kind=MessageKind.RESOLVED), TZ)
    assert found[0] == "Missing child alert for Lin: found safe. Thank you"
    withdrawn = wea.texts(sample_content(child_name="Lin", kind=MessageKind.CANCELLED), TZ)
    assert "withdrawn" in withdrawn[0] and "withdrawn" in withdrawn[1]
    drill = wea.texts(sample_content(status=AlertStatus.EXERCISE), TZ)
    assert all(t.startswith("EXERCISE: ") for t in drill)


def test_only_english_infos_carry_the_wea_texts():
    content = sample_content()
    assert [n for n, _ in wea.parameters(content, "zh-CN", TZ)] == ["EAS-ORG"]
    assert [n for n, _ in wea.parameters(content, "en", TZ)] == [
        "EAS-ORG",
        "CMAMtext",
        "CMAMlongtext",
    ]


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(max_size=120),
    clothing=st.text(max_size=300),
    place=st.text(max_size=300),
    tip=st.text(alphabet="+0123456789 -", min_size=3, max_size=32),
    kind=st.sampled_from(list(MessageKind)),
    status=st.sampled_from(list(AlertStatus)),
)
def test_any_content_gives_gsm7_texts_within_the_limits(name, clothing, place, tip, kind, status):
    content = sample_content(
        child_name=name,
        clothing=clothing,
        last_seen_place=place,
        tip_line=tip,
        kind=kind,
        status=status,
    )
    short, long = wea.texts(content, TZ)
    assert sms.is_gsm7(short) and sms.is_gsm7(long)
    assert 0 < wea.septets(short) <= wea.CMAM_TEXT_MAX
    assert 0 < wea.septets(long) <= wea.CMAM_LONG_TEXT_MAX
    if kind in (MessageKind.ALERT, MessageKind.UPDATE, MessageKind.EXPIRED):
        assert wea.gsm7(tip) in short and wea.gsm7(tip) in long
