"""The offline gazetteer (geopy Geocoder over GeoNames cities15000) and the lookup service."""

from __future__ import annotations

import pytest
from geopy.geocoders.base import Geocoder
from geopy.location import Location
from pydantic import ValidationError

from alerts.console import i18n
from geo.gazetteer import offline
from geo.gazetteer import service as gazetteer
from ops.platform.config import Settings

CODER = offline.OfflineGazetteer()


def names(query: str, language: str = "zh-CN", limit: int = 5) -> list[str]:
    found = CODER.geocode(query, exactly_one=False, limit=limit, language=language) or []
    return [loc.raw["name"] for loc in found]


def test_it_is_a_geopy_geocoder_returning_locations():
    assert isinstance(CODER, Geocoder)
    loc = CODER.geocode("广州")
    assert isinstance(loc, Location)
    assert (round(loc.latitude, 1), round(loc.longitude, 1)) == (23.1, 113.2)
    assert loc.address == "广州，广东，中国"
    many = CODER.geocode("广州", exactly_one=False)
    assert isinstance(many, list) and many[0].raw["geonameid"] == loc.raw["geonameid"]


@pytest.mark.parametrize("query", ["广州", "广州市", "廣州", "Guangzhou", "guangzhou", "Canton"])
def test_guangzhou_is_found_by_its_chinese_and_english_names(query):
    loc = CODER.geocode(query, language="en")
    assert loc.address == "Guangzhou, Guangdong, China"
    assert loc.raw["name_zh"] == "广州" and loc.raw["province"] == "Guangdong"


def test_a_district_is_found_and_the_province_tells_namesakes_apart():
    found = CODER.geocode("龙岗", exactly_one=False)  # Longgang District, Shenzhen
    assert [loc.raw["province"] for loc in found][:2] == ["广东", "重庆"]
    assert abs(found[0].latitude - 22.72) < 0.05 and abs(found[0].longitude - 114.25) < 0.05
    chongqing = CODER.geocode("重庆 龙岗")
    assert chongqing.raw["province"] == "重庆"
    assert CODER.geocode("Longgang, Chongqing", language="en").raw["province"] == "Chongqing"


def test_the_chinese_name_shown_is_the_citys_own_not_an_old_or_district_name():
    # GeoNames lists 宝安 (a district) and 迪化 (a historical name) among the alternates.
    assert names("Shenzhen")[0] == "深圳"
    assert names("Urumqi")[0] == "乌鲁木齐"


def test_namesakes_rank_by_population():
    found = CODER.geocode("Suzhou", exactly_one=False, language="en")
    assert found[0].raw["province"] == "Jiangsu"  # 苏州 (6.7 M) before 宿州 (1.6 M)
    pops = [loc.raw["population"] for loc in found]
    assert pops == sorted(pops, reverse=True)


def test_exact_names_rank_before_longer_names_that_start_with_the_query():
    assert names("广州")[0] == "广州"
    assert names("广", limit=8)[0] == "深圳" or names("广", limit=8)[0].startswith("广")
    assert names("Beijing", language="en")[0] == "Beijing"


@pytest.mark.parametrize("query", ["xyzzy", "火星城", "  ", ",", "广东"])
def test_no_match_is_none_like_any_geopy_geocoder(query):
    # A province alone is no place: the user is asked for a city or district.
    assert CODER.geocode(query) is None
    assert CODER.geocode(query, exactly_one=False) is None


def test_lookup_caps_the_results_and_names_the_fields(tmp_path):
    settings = Settings(data_dir=tmp_path, geocoder_max_results=2)
    found = gazetteer.lookup("广", "zh-CN", settings, limit=10)
    assert len(found) == 2
    first = gazetteer.lookup("Guangzhou", "en", settings)[0]
    assert (first.name, first.province, first.country, first.source) == (
        "Guangzhou",
        "Guangdong",
        "China",
        "offline",
    )


def test_a_network_provider_is_built_from_the_settings(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        geocoder="Nominatim",
        geocoder_options={"domain": "nominatim.police.internal", "scheme": "https"},
        geocoder_timeout_s=3,
    )
    coder = gazetteer.geocoder(settings)
    assert type(coder).__name__ == "Nominatim"
    assert coder.domain == "nominatim.police.internal" and coder.timeout == 3
    assert coder.headers["User-Agent"] == gazetteer.USER_AGENT


def test_an_unknown_provider_is_refused_at_start_up(tmp_path):
    with pytest.raises(ValidationError, match="unknown geocoder 'bogus'"):
        Settings(data_dir=tmp_path, geocoder="bogus")


def test_every_failure_cause_has_a_message_in_both_languages():
    for language in i18n.LANGUAGES:
        for cause in gazetteer.LookupFailed.CAUSES:
            assert f"geo.cause_{cause}" in i18n.MESSAGES[language]
