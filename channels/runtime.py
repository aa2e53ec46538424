"""The workers' composition root: one event loop and one client per channel, per process.

Celery's prefork children are long-lived, so each child keeps its HTTP/2 connections and SMPP
bind across tasks instead of reconnecting per batch. Everything is created lazily after the
fork (keyed by pid), never inherited from the parent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import uvloop

from channels import messages, pacing, sms_parts
from channels.apns import ApnsChannel
from channels.base import AlertSource, Audience, Delivery, Devices, Progress
from channels.fcm import FcmChannel
from channels.sms_http import SmsHttpChannel
from channels.sms_smpp import SmppChannel
from channels.webhook import WebhookChannel
from ops.platform.channel_settings import ChannelSettings
from ops.platform.config import Mode, get_settings
from ops.platform.redis_client import get_redis

# httpx logs every request line at INFO: a log line per FCM push or webhook call, which costs
# more than the call at thousands per second. hpack (under the APNs client) logs every header at
# DEBUG, the device token in the path and the provider JWT included: secrets.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)
logging.getLogger("hpack").setLevel(logging.WARNING)


class NotConfigured(RuntimeError):
    """The channel has no settings block; its tasks cannot send."""


@dataclass(frozen=True)
class Ports:
    """What channels need from the domains above them, wired once by `alerts.bootstrap`."""

    devices: Devices
    alerts: AlertSource
    audience: Audience
    progress: Progress


_ports: Ports | None = None


def wire(ports: Ports) -> None:
    """Install the domain implementations (the composition root calls this at start-up)."""
    global _ports
    _ports = ports


def ports() -> Ports:
    """The wired implementations; a process that skipped the composition root fails loudly."""
    if _ports is None:
        raise RuntimeError("channels are not wired: call alerts.bootstrap.wire() at start-up")
    return _ports


class _State(threading.local):
    """One event loop and one client per channel for each thread of each process: a prefork
    child has one thread, a thread-pool worker (the webhook worker) one per slot."""

    pid: int | None = None
    loop: asyncio.AbstractEventLoop | None = None
    channels: dict[str, Any]
    deliveries: OrderedDict[str, tuple[float, Delivery]]


_state = _State()
DELIVERY_CACHE_S = 30.0


def new_loop() -> asyncio.AbstractEventLoop:
    """An event loop for channel work: uvloop's (libuv, in C) unless REUNITE_EVENT_LOOP=asyncio.
    With a thousand pushes in flight, scheduling in asyncio's own loop is a tenth of a worker's
    CPU; uvloop took 6% off the fan-out's CPU per push (docs/PERFORMANCE.md, "Issue 16")."""
    if os.environ.get("REUNITE_EVENT_LOOP", "uvloop") == "asyncio":
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _reset_if_forked() -> _State:
    s = _state
    if s.pid != os.getpid():
        s.pid = os.getpid()
        s.loop = new_loop()
        s.channels = {}
        s.deliveries = OrderedDict()
    return s


def run(coro: Any) -> Any:
    """Run a coroutine on this thread's loop (connections survive between tasks)."""
    loop = _reset_if_forked().loop
    assert loop is not None
    return loop.run_until_complete(coro)


def channel(name: str, settings: ChannelSettings) -> Any:
    """This thread's client for a channel: apns, fcm, sms or webhook."""
    clients = _reset_if_forked().channels
    if name not in clients:
        clients[name] = _build(name, settings)
    return clients[name]


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
            return _smpp(s, s.smpp)
        if s.sms_http is not None:
            return SmsHttpChannel(
                s.sms_http, max_parts=s.max_sms_parts, parts=parts_store(SmsHttpChannel.name)
            )
        raise NotConfigured("sms")
    if name == "sms_broadcast":
        if s.sms_http is None:
            raise NotConfigured("sms_http")
        return SmsHttpChannel(s.sms_http, max_parts=s.max_sms_parts)
    if name == "webhook":
        # Production connects only to checked public addresses (SSRF, DNS rebinding).
        return WebhookChannel(s.webhook, allow_private=get_settings().mode is not Mode.PRODUCTION)
    raise NotConfigured(name)


def _smpp(s: ChannelSettings, smpp: Any) -> SmppChannel:
    # One token per submit_sm from the bind's shared bucket, evenly spaced (burst 1): a carrier
    # capping PDUs per second sees no bursts of whole messages.
    bucket = pacing.TokenBucket(get_redis(), sms_bind_name(s), limits("sms", s).rate_per_s, 1)
    return SmppChannel(
        smpp,
        max_parts=s.max_sms_parts,
        pacer=pacing.BucketPacer(bucket),
        parts=parts_store(SmppChannel.name),
    )


def parts_store(provider: str) -> sms_parts.RedisParts:
    """The shared SMS part state of a provider (accepted parts, ids, receipts)."""
    client = get_redis()
    return sms_parts.RedisParts(client, provider, persist=sms_parts.snapshot(client))


@dataclass(frozen=True)
class Limits:
    """How fast and in what sizes one channel sends: its class's limits, settings override."""

    rate_per_s: float
    batch: int
    concurrency: int


def _sms_class(s: ChannelSettings) -> type:
    return SmppChannel if s.sms_provider == "smpp" and s.smpp is not None else SmsHttpChannel


def limits(name: str, s: ChannelSettings) -> Limits:
    """The limits a channel runs with (apns, fcm, fcm_topic, sms, sms_broadcast)."""
    cls, (rate, batch, concurrency) = {
        "apns": (ApnsChannel, (s.apns_rate_per_s, s.apns_batch, s.apns_concurrency)),
        "fcm": (FcmChannel, (s.fcm_rate_per_s, s.fcm_batch, s.fcm_concurrency)),
        "fcm_topic": (FcmChannel, (s.fcm_rate_per_s, None, s.fcm_concurrency)),
        "sms": (_sms_class(s), (s.sms_rate_per_s, s.sms_batch, s.sms_concurrency)),
        "sms_broadcast": (SmsHttpChannel, (s.sms_rate_per_s, None, 1)),
    }[name]
    return Limits(
        rate_per_s=rate or cls.rate_per_second,
        batch=batch or cls.batch_size,
        concurrency=concurrency or cls.concurrency,
    )


def sms_bind_name(s: ChannelSettings) -> str:
    """The pacing key of the SMS bind: carriers cap throughput per bind."""
    if s.sms_provider == "smpp" and s.smpp is not None:
        return f"smpp:{s.smpp.host}:{s.smpp.port}:{s.smpp.system_id}"
    return "sms_http"


def cached_delivery(message_id: str, build: Any) -> Delivery:
    """The rendered Delivery of a message, rendered once per process and kept briefly."""
    cache = _reset_if_forked().deliveries
    now = time.monotonic()
    hit = cache.get(message_id)
    if hit is not None and now - hit[0] < DELIVERY_CACHE_S:
        return hit[1]
    delivery = build()
    cache[message_id] = (now, delivery)
    while len(cache) > 64:
        cache.popitem(last=False)
    return delivery


def languages(case_languages: list[str] | None) -> list[str]:
    """The case's alert languages that we can render (both defaults if none)."""
    langs = [lang for lang in case_languages or [] if lang in messages.SUPPORTED_LANGUAGES]
    return langs or list(messages.DEFAULT_LANGUAGES)
