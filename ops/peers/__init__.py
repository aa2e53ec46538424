"""Local protocol peers ("sinks") that speak each provider's real wire protocol on loopback.

They back the integration tests and `reunite demo`, so they live in the package rather than
under tests/. Each sink is a plain object recording what it received, plus a `running(...)`
context manager that serves it from a background thread and yields its `Endpoint`:

- `apns.ApnsSink`: APNs provider API over HTTP/2 + TLS (self-signed cert), JWT checked
- `fcm.FcmSink`: FCM v1 token endpoint and messages:send
- `webhook.WebhookReceiver`: partner endpoint verifying Standard Webhooks signatures
- `smsc.SmscSink`: SMPP 3.4 SMSC on smpp34's server, reassembling concatenated SMS
- `sms_gateway.SmsGatewaySink`: HTTP SMS gateway with area broadcast

Serving the HTTP sinks needs hypercorn.
"""

from ops.peers import apns, fcm, keys, sms_gateway, smsc, webhook
from ops.peers._runtime import Endpoint, TlsFiles, make_self_signed, temp_tls

__all__ = [
    "Endpoint",
    "TlsFiles",
    "apns",
    "fcm",
    "keys",
    "make_self_signed",
    "sms_gateway",
    "smsc",
    "temp_tls",
    "webhook",
]
