"""An offline gazetteer with geopy's Geocoder interface: cities and districts of China (with
Hong Kong, Macao and Taiwan) from GeoNames cities15000, by Chinese or English name.

Pure lookups over a committed data file (built by geo/gazetteer/build.py); no network. A query
is a place name, optionally with its province ("广东 广州", "Guangzhou, Guangdong"); results
rank exact names before prefixes before substrings, then by population.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from geopy.geocoders.base import Geocoder
from geopy.location import Location

DATA_FILE = "cities.json.gz"
COLUMNS = ["id", "en", "en_alt", "zh", "zh_alt", "lat", "lon", "population", "cc", "admin1"]
DEFAULT_LIMIT = 8
# GeoNames admin1 codes of China (CN.xx) and the three regions GeoNames files as countries.
PROVINCES: dict[str, tuple[str, str]] = {
    "CN.01": ("Anhui", "安徽"),
    "CN.02": ("Zhejiang", "浙江"),
    "CN.03": ("Jiangxi", "江西"),
    "CN.04": ("Jiangsu", "江苏"),
    "CN.05": ("Jilin", "吉林"),
    "CN.06": ("Qinghai", "青海"),
    "CN.07": ("Fujian", "福建"),
    "CN.08": ("Heilongjiang", "黑龙江"),
    "CN.09": ("Henan", "河南"),
    "CN.10": ("Hebei", "河北"),
    "CN.11": ("Hunan", "湖南"),
    "CN.12": ("Hubei", "湖北"),
    "CN.13": ("Xinjiang", "新疆"),
    "CN.14": ("Tibet", "西藏"),
    "CN.15": ("Gansu", "甘肃"),
    "CN.16": ("Guangxi", "广西"),
    "CN.18": ("Guizhou", "贵州"),
    "CN.19": ("Liaoning", "辽宁"),
    "CN.20": ("Inner Mongolia", "内蒙古"),
    "CN.21": ("Ningxia", "宁夏"),
    "CN.22": ("Beijing", "北京"),
    "CN.23": ("Shanghai", "上海"),
    "CN.24": ("Shanxi", "山西"),
    "CN.25": ("Shandong", "山东"),
    "CN.26": ("Shaanxi", "陕西"),
    "CN.28": ("Tianjin", "天津"),
    "CN.29": ("Yunnan", "云南"),
    "CN.30": ("Guangdong", "广东"),
    "CN.31": ("Hainan", "海南"),
    "CN.32": ("Sichuan", "四川"),
    "CN.33": ("Chongqing", "重庆"),
    "HK": ("Hong Kong", "香港"),
    "MO": ("Macao", "澳门"),
    "TW": ("Taiwan", "台湾"),
}
COUNTRY = {"CN": ("China", "中国"), "HK": ("China", "中国"), "MO": ("China", "中国")}
COUNTRY["TW"] = COUNTRY["CN"]
# Suffixes people add to Chinese place names (city, district, county, town, province...).
_ZH_SUFFIX = re.compile(r"(特别行政区|自治区|自治州|自治县|省|市|区|县|镇|州)$")
_SPLIT = re.compile(r"[,，、;；\s]+")


def fold(text: str) -> str:
    """A name as compared: lower case, no accents, no spaces or punctuation (CJK kept)."""
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in text if ch.isalnum() and not unicodedata.combining(ch))


@dataclass(frozen=True)
class Place:
    """One gazetteer entry."""

    id: int
    en: str
    zh: str
    lat: float
    lon: float
    population: int
    country: str
    province_key: str
    keys: tuple[str, ...]  # folded names and aliases

    def province(self, language: str) -> str:
        """The province's name in the language ("" when GeoNames gives none)."""
        en, zh = PROVINCES.get(self.province_key, ("", ""))
        return zh if language.startswith("zh") else en

    def name(self, language: str) -> str:
        """The place's name in the language (the English one when no Chinese name exists)."""
        return (self.zh or self.en) if language.startswith("zh") else self.en


def _province_key(cc: str, admin1: str) -> str:
    return f"CN.{admin1}" if cc == "CN" else cc


@lru_cache(maxsize=4)
def load(path: Path | None = None) -> tuple[Place, ...]:
    """The gazetteer's places, largest first (read once per process)."""
    raw = gzip.decompress((path or Path(__file__).with_name(DATA_FILE)).read_bytes())
    doc = json.loads(raw)
    col = {name: i for i, name in enumerate(doc["columns"])}
    places = []
    for r in doc["rows"]:
        names = [r[col["en"]], *r[col["en_alt"]], r[col["zh"]], *r[col["zh_alt"]]]
        keys = {fold(n) for n in names if n}
        keys |= {fold(_ZH_SUFFIX.sub("", n)) for n in names if n and _ZH_SUFFIX.search(n)}
        places.append(
            Place(
                id=r[col["id"]],
                en=r[col["en"]],
                zh=r[col["zh"]],
                lat=r[col["lat"]],
                lon=r[col["lon"]],
                population=r[col["population"]],
                country=r[col["cc"]],
                province_key=_province_key(r[col["cc"]], r[col["admin1"]]),
                keys=tuple(sorted(k for k in keys if k)),
            )
        )
    return tuple(places)


def _province_filter(tokens: list[str]) -> tuple[set[str], list[str]]:
    """Split off tokens naming a province: (province keys, remaining tokens)."""
    keys: set[str] = set()
    rest = []
    for token in tokens:
        hit = {
            key
            for key, (en, zh) in PROVINCES.items()
            if token in (fold(en), fold(zh), fold(zh) + "省", fold(zh) + "市")
        }
        if hit and len(tokens) > 1:
            keys |= hit
        else:
            rest.append(token)
    return keys, rest


def _score(place: Place, needle: str) -> int:
    """3 exact name, 2 a name starts with it, 1 contains it, 0 no match."""
    best = 0
    for key in place.keys:
        if key == needle:
            return 3
        if key.startswith(needle):
            best = max(best, 2)
        elif len(needle) >= 2 and needle in key:
            best = max(best, 1)
    return best


def search(query: str, limit: int = DEFAULT_LIMIT, places: tuple[Place, ...] | None = None):
    """Places matching the query, best first (exact, prefix, substring; then population)."""
    places = places if places is not None else load()
    tokens = [fold(t) for t in _SPLIT.split(query.strip()) if fold(t)]
    provinces, rest = _province_filter(tokens)
    if not rest:
        return []
    needle = "".join(rest)
    stripped = fold(_ZH_SUFFIX.sub("", "".join(rest)))
    scored = []
    for place in places:
        if provinces and place.province_key not in provinces:
            continue
        score = _score(place, needle)
        if not score and stripped and stripped != needle:
            score = _score(place, stripped)
        if score:
            scored.append((-score, -place.population, place.id, place))
    scored.sort(key=lambda item: item[:3])
    return [item[3] for item in scored[:limit]]


class OfflineGazetteer(Geocoder):
    """geopy Geocoder over the shipped GeoNames extract: no network, no API key."""

    def __init__(self, *, language: str = "zh-CN", data_path: Path | None = None, **kwargs: Any):
        """A gazetteer answering in the language (zh-CN or en) by default."""
        super().__init__(**kwargs)
        self.language = language
        self.data_path = data_path

    def geocode(
        self,
        query: str,
        *,
        exactly_one: bool = True,
        limit: int | None = None,
        language: str | None = None,
        timeout: Any = None,
    ) -> Location | list[Location] | None:
        """Locations for a place name (geopy semantics: one or None, else a list or None)."""
        lang = language or self.language
        found = search(str(query), 1 if exactly_one else (limit or DEFAULT_LIMIT), self._places())
        locations = [_location(p, lang) for p in found]
        if exactly_one:
            return locations[0] if locations else None
        return locations or None

    def _places(self) -> tuple[Place, ...]:
        return load(self.data_path)


def _location(place: Place, language: str) -> Location:
    zh = language.startswith("zh")
    country = COUNTRY.get(place.country, (place.country, place.country))[1 if zh else 0]
    parts = [place.name(language), place.province(language), country]
    # A municipality (Beijing, Shanghai...) is its own province: do not say it twice.
    parts = [p for i, p in enumerate(parts) if p and p not in parts[:i]]
    raw = {
        "geonameid": place.id,
        "name": place.name(language),
        "name_en": place.en,
        "name_zh": place.zh,
        "province": place.province(language),
        "country": country,
        "population": place.population,
        "source": "offline",
    }
    return Location(("，" if zh else ", ").join(parts), (place.lat, place.lon), raw)
