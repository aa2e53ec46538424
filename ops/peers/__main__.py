"""Run every sink standalone: `python -m ops.peers [--host H] [--base-port P]`.

Demo mode: the APNs and FCM sinks accept any provider token (no key to share), the webhook
receiver uses the secret given or a fresh one. Endpoints and the CA bundle path are written to
stdout as one JSON line, so a demo script can read them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from ops.peers import apns, fcm, keys, sms_gateway, smsc, webhook
from ops.peers._runtime import make_self_signed


def main(argv: list[str] | None = None) -> int:
    """Start all sinks and block until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m ops.peers")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=0, help="0: pick free ports")
    parser.add_argument("--dir", type=Path, default=Path(".reunite/sinks"))
    parser.add_argument("--topic", default="cn.reunite.app")
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--sms-token", default="demo-sms-token")
    args = parser.parse_args(argv)

    def port(offset: int) -> int:
        return args.base_port + offset if args.base_port else 0

    tls = make_self_signed(args.dir, args.host)
    secret = args.webhook_secret or keys.make_webhook_secret()
    apns_sink = apns.ApnsSink(topic=args.topic, team_id="", key_id="", public_key=None)
    fcm_sink = fcm.FcmSink(project_id="reunite-demo", client_email="", public_key=None)
    receiver = webhook.WebhookReceiver(secret=secret)
    gateway = sms_gateway.SmsGatewaySink(api_token=args.sms_token)
    smsc_sink = smsc.SmscSink()
    with contextlib.ExitStack() as stack:
        endpoints = {
            "apns": stack.enter_context(apns.running(apns_sink, tls=tls, port=port(0))),
            "fcm": stack.enter_context(fcm.running(fcm_sink, port=port(1))),
            "webhook": stack.enter_context(webhook.running(receiver, port=port(2))),
            "sms_gateway": stack.enter_context(sms_gateway.running(gateway, port=port(3))),
            "smsc": stack.enter_context(smsc.running(smsc_sink, args.host, port(4))),
        }
        info = {name: ep.url for name, ep in endpoints.items()}
        info["ca_bundle"] = str(tls.ca_bundle)
        info["webhook_secret"] = secret
        info["sms_token"] = args.sms_token
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
