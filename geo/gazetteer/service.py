"""Address lookup for the console: the configured geopy geocoder, its answers as candidates.

The query may be personal data (a family's street), so nothing here logs it: failures are
logged by cause only, and callers must not log it either.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from geopy import exc as geopy_exc
from geopy.geocoders import get_geocoder_for_service
from geopy.geocoders.base import Geocoder
from geopy.location import Location

from geo.gazetteer import offline
from ops.platform.config import Settings

log = logging.getLogger(__name__)
QUERY_MAX_CHARS = 200
USER_AGENT = "reunite-console"


class LookupFailed(Exception):
    """The provider did not answer usefully; `cause` is one of CAUSES (no query text)."""

    CAUSES = ("timeout", "unavailable", "refused", "rate_limited", "error")

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True)
class Candidate:
    """One place the console can offer: what to show and where to put the marker."""

    label: str
    name: str
    province: str
    country: str
    lat: float
    lon: float
    source: str


def _options(settings: Settings, cls: type[Geocoder]) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    opts: dict[str, Any] = dict(settings.geocoder_options)
    if "user_agent" in params:
        opts.setdefault("user_agent", USER_AGENT)
    if "timeout" in params:
        opts.setdefault("timeout", settings.geocoder_timeout_s)
    if settings.geocoder_api_key is not None:
        key = settings.geocoder_api_key.get_secret_value()
        # Providers name the credential differently (api_key, apikey, key; Baidu's ak).
        for name in ("api_key", "apikey", "key", "ak"):
            if name in params:
                opts.setdefault(name, key)
                break
    return opts


@lru_cache(maxsize=8)
def _build(name: str, options: tuple[tuple[str, Any], ...]) -> Geocoder:
    if name == "offline":
        return offline.OfflineGazetteer()
    cls = get_geocoder_for_service(name)
    return cls(**dict(options))


def geocoder(settings: Settings) -> Geocoder:
    """The geocoder the settings select (built once per configuration)."""
    if settings.geocoder == "offline":
        return _build("offline", ())
    cls = get_geocoder_for_service(settings.geocoder)
    opts = _options(settings, cls)
    return _build(settings.geocoder, tuple(sorted((k, _hashable(v)) for k, v in opts.items())))


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _call(coder: Geocoder, query: str, language: str, limit: int) -> list[Location]:
    params = inspect.signature(coder.geocode).parameters
    kwargs: dict[str, Any] = {"exactly_one": False}
    if "limit" in params:
        kwargs["limit"] = limit
    if "language" in params:
        kwargs["language"] = language
    try:
        found = coder.geocode(query, **kwargs)
    except geopy_exc.GeocoderTimedOut:
        raise LookupFailed("timeout") from None
    except geopy_exc.GeocoderUnavailable:
        raise LookupFailed("unavailable") from None
    except geopy_exc.GeocoderRateLimited:
        raise LookupFailed("rate_limited") from None
    except (
        geopy_exc.GeocoderAuthenticationFailure,
        geopy_exc.GeocoderInsufficientPrivileges,
        geopy_exc.GeocoderQuotaExceeded,
    ):
        raise LookupFailed("refused") from None
    except geopy_exc.GeopyError as err:
        # The class name only: a provider's message may quote the query.
        log.warning("address lookup failed: %s", type(err).__name__)
        raise LookupFailed("error") from None
    if found is None:
        return []
    return [found] if isinstance(found, Location) else list(found)


def _candidate(loc: Location, source: str) -> Candidate:
    raw = loc.raw if isinstance(loc.raw, dict) else {}
    if raw.get("source") == "offline":
        name, province, country = raw["name"], raw["province"], raw["country"]
    else:
        # Network providers answer with one display address; its first part names the place.
        name, province, country = loc.address.split(",")[0].strip(), "", ""
    return Candidate(
        label=loc.address,
        name=name,
        province=province,
        country=country,
        lat=round(loc.latitude, 6),
        lon=round(loc.longitude, 6),
        source=source,
    )


def lookup(query: str, language: str, settings: Settings, limit: int | None = None):
    """Candidates for a place name, best first, at most geocoder_max_results."""
    cap = min(limit or settings.geocoder_max_results, settings.geocoder_max_results)
    coder = geocoder(settings)
    found = _call(coder, query.strip()[:QUERY_MAX_CHARS], language, cap)
    return [_candidate(loc, settings.geocoder) for loc in found[:cap]]
