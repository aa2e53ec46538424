"""The workers' composition root: one event loop and one client per channel, per process.

Celery's prefork children are long-lived, so each child keeps its HTTP/2 connections and SMPP
bind across tasks instead of reconnecting per batch. Everything is created lazily after the
fork (keyed by pid), never inherited from the parent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from typing import Any

from channels import messages
from channels.apns import ApnsChannel
from channels.base import Area, Delivery
from channels.fcm import FcmChannel
from channels.settings import ChannelSettings
from channels.sms_http import SmsHttpChannel
from channels.sms_smpp import SmppChannel
from channels.webhook import WebhookChannel

# httpx logs every request line at INFO: a log line per FCM push or webhook call, which costs
# more than the call at thousands per second. hpack (under the APNs client) logs every header at
# DEBUG, the device token in the path and the provider JWT included: secrets.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)
logging.getLogger("hpack").setLevel(logging.WARNING)


class NotConfigured(RuntimeError):
    """The channel has no settings block; its tasks cannot send."""


_pid: int | None = None
_loop: asyncio.AbstractEventLoop | None = None
_channels: dict[str, Any] = {}
_deliveries: OrderedDict[str, tuple[float, Delivery]] = OrderedDict()
DELIVERY_CACHE_S = 30.0


def _reset_if_forked() -> None:
    global _pid, _loop
    if _pid != os.getpid():
        _pid = os.getpid()
        _loop = asyncio.new_event_loop()
        _channels.clear()
        _deliveries.clear()


def run(coro: Any) -> Any:
    """Run a coroutine on this process's loop (connections survive between tasks)."""
    _reset_if_forked()
    assert _loop is not None
    return _loop.run_until_complete(coro)


def channel(name: str, settings: ChannelSettings) -> Any:
    """This process's client for a channel: apns, fcm, sms or webhook."""
    _reset_if_forked()
    if name not in _channels:
        _channels[name] = _build(name, settings)
    return _channels[name]


def _build(name: str, s: ChannelSettings) -> Any:
    if name == "apns":
        if s.apns is None:
            raise NotConfigured("apns")
        return ApnsChannel(s.apns)
    if name in ("fcm", "fcm_topic"):
        if s.fcm is None:
            raise NotConfigured("fcm")
        return FcmChannel(s.fcm)
    if name == "sms":
        if s.sms_provider == "smpp" and s.smpp is not None:
            return SmppChannel(s.smpp)
        if s.sms_http is not None:
            return SmsHttpChannel(s.sms_http)
        raise NotConfigured("sms")
    if name == "sms_broadcast":
        if s.sms_http is None:
            raise NotConfigured("sms_http")
        return SmsHttpChannel(s.sms_http)
    if name == "webhook":
        return WebhookChannel(s.webhook)
    raise NotConfigured(name)


def sms_bind_name(s: ChannelSettings) -> str:
    """The pacing key of the SMS bind: carriers cap throughput per bind."""
    if s.sms_provider == "smpp" and s.smpp is not None:
        return f"smpp:{s.smpp.host}:{s.smpp.port}:{s.smpp.system_id}"
    return "sms_http"


def area_of(doc: dict | None) -> Area | None:
    """The channel Area from a message's area JSON (CAP polygon text, cells)."""
    if not doc:
        return None
    pairs = []
    for pair in str(doc.get("cap_polygon") or "").split():
        lat, lon = pair.split(",")
        pairs.append((float(lat), float(lon)))
    center = doc.get("center") or [0.0, 0.0]
    radius = doc.get("radius_km")
    desc = f"{radius:g} km around {center[0]:.3f},{center[1]:.3f}" if radius else "alert area"
    return Area(description=desc, polygon=tuple(pairs), cells=tuple(doc.get("cells") or ()))


def cached_delivery(message_id: str, build: Any) -> Delivery:
    """The rendered Delivery of a message, rendered once per process and kept briefly."""
    _reset_if_forked()
    now = time.monotonic()
    hit = _deliveries.get(message_id)
    if hit is not None and now - hit[0] < DELIVERY_CACHE_S:
        return hit[1]
    delivery = build()
    _deliveries[message_id] = (now, delivery)
    while len(_deliveries) > 64:
        _deliveries.popitem(last=False)
    return delivery


def languages(case_languages: list[str] | None) -> list[str]:
    """The case's alert languages that we can render (both defaults if none)."""
    langs = [lang for lang in case_languages or [] if lang in messages.SUPPORTED_LANGUAGES]
    return langs or list(messages.DEFAULT_LANGUAGES)
