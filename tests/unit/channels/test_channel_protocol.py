"""Every channel class implements the shared Channel protocol and declares its limits."""

from __future__ import annotations

import inspect

import pytest

from channels.apns import ApnsChannel
from channels.fcm import FcmChannel
from channels.sms_http import SmsHttpChannel
from channels.sms_smpp import SmppChannel
from channels.webhook import WebhookChannel

CHANNELS = [ApnsChannel, FcmChannel, WebhookChannel, SmppChannel, SmsHttpChannel]


@pytest.mark.parametrize("cls", CHANNELS)
def test_channel_declares_limits_and_async_send(cls):
    assert isinstance(cls.name, str) and cls.name
    assert cls.rate_per_second > 0
    assert cls.max_body_bytes > 0
    assert cls.batch_size >= 1
    assert inspect.iscoroutinefunction(cls.send)
    assert inspect.iscoroutinefunction(cls.aclose)
    assert list(inspect.signature(cls.send).parameters) == ["self", "target", "delivery"]


def test_channel_names_are_unique():
    assert len({c.name for c in CHANNELS}) == len(CHANNELS)
