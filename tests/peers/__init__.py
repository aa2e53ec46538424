"""Local protocol peers for tests; the servers live in ops.peers so `reunite demo` can
ship them, and this package re-exports them with sample data for tests.

Run them standalone with `python -m tests.peers` (same as `python -m ops.peers`).
"""

from ops.peers import apns, fcm, keys, sms_gateway, smsc, webhook
from ops.peers._runtime import Endpoint, temp_tls
from tests.peers.samples import sample_content, sample_delivery

__all__ = [
    "Endpoint",
    "apns",
    "fcm",
    "keys",
    "sample_content",
    "sample_delivery",
    "sms_gateway",
    "smsc",
    "temp_tls",
    "webhook",
]
