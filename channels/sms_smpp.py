"""SMS over SMPP 3.4, with the `smpp34` client (Rust/tokio core, asyncio API).

smpp34's client is usable for everything we need: bind_transceiver, submit_sm with every
field and TLVs, and command_status on the response (it does not raise on a NAK), so
aiosmpplib is not needed. Long texts go out either as UDH-concatenated parts (esm_class 0x40,
6-byte UDH per part) or whole in the message_payload TLV when the carrier prefers to split
itself; never both in one submit_sm. Area broadcast by cell is the carrier's HTTP API
(channels.sms_http.SmsHttpChannel.broadcast_area), not SMPP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import ClassVar, Literal

import smpp34

from channels import sms
from channels.base import Delivery, Outcome, Recipient
from ops.platform.channel_settings import SMS_MAX_PARTS, SmppSettings

ESM_CLASS_UDHI = 0x40
# SMPP 3.4 §5.3.2.32; smpp34 re-exports it only at run time, so type checkers cannot see it.
TLV_MESSAGE_PAYLOAD = 0x0424
MAX_SHORT_MESSAGE = 254

ESME_ROK = 0x00
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
_NAMES = {
    0x01: "ESME_RINVMSGLEN",
    0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS",
    0x0A: "ESME_RINVSRCADR",
    0x45: "ESME_RSUBMITFAIL",
    0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY",
}


def classify_status(command_status: int, retry_after: float | None = None) -> Outcome:
    """submit_sm_resp command_status -> outcome."""
    if command_status == ESME_ROK:
        return Outcome.ok(status=command_status)
    if command_status == ESME_RTHROTTLED:
        # The carrier's per-bind rate cap: we were too fast, the SMSC itself is fine.
        return Outcome.throttle("ESME_RTHROTTLED", retry_after, status=command_status)
    if command_status == ESME_RMSGQFUL:
        return Outcome.retry("ESME_RMSGQFUL", retry_after, status=command_status)
    if command_status == ESME_RINVDSTADR:
        return Outcome.dead_target("ESME_RINVDSTADR", status=command_status)
    if command_status == ESME_RSYSERR:
        # The SMSC's own failure (it also answers this when it drops a PDU): transient.
        return Outcome.retry("ESME_RSYSERR", retry_after, status=command_status)
    name = _NAMES.get(command_status, f"ESME_0x{command_status:08X}")
    return Outcome.failed(name, status=command_status)


def concat_ref(message_id: str, msisdn: str) -> int:
    """Concatenation reference derived from message and number, so a resubmitted message
    reuses it and the handset merges the parts instead of showing two half-messages."""
    return hashlib.sha256(f"{message_id}:{msisdn}".encode()).digest()[0]


def build_submits(
    plan: sms.SmsPlan, mode: Literal["udh", "payload"], ref: int
) -> list[tuple[bytes, int, list[smpp34.Tlv]]]:
    """(short_message, esm_class, tlvs) per submit_sm for an SMS plan."""
    if mode == "payload" or plan.part_count <= 1:
        whole = plan.payload
        if len(whole) <= MAX_SHORT_MESSAGE:
            return [(whole, 0, [])]
        return [(b"", 0, [smpp34.Tlv(TLV_MESSAGE_PAYLOAD, whole)])]
    total = plan.part_count
    return [
        (sms.concat_udh(ref, total, seq) + part.payload, ESM_CLASS_UDHI, [])
        for seq, part in enumerate(plan.parts, start=1)
    ]


class SmppChannel:
    """Submits alert SMS to an SMSC over one transceiver bind."""

    name: ClassVar[str] = "sms_smpp"
    rate_per_second: ClassVar[float] = 20.0  # per bind; carriers cap 10-30/s
    batch_size: ClassVar[int] = 50
    concurrency: ClassVar[int] = 10
    max_body_bytes: ClassVar[int] = MAX_SHORT_MESSAGE

    def __init__(self, settings: SmppSettings, *, max_parts: int = SMS_MAX_PARTS) -> None:
        self.settings = settings
        self.max_parts = max_parts
        self._client: smpp34.Client | None = None
        self._session: smpp34.Smsc | None = None
        self._lock = asyncio.Lock()

    async def _bound(self) -> smpp34.Smsc:
        async with self._lock:
            if self._client is not None and not await self._client.is_alive():
                # The SMSC unbound or the TCP link dropped since the last send: bind again.
                client, self._client, self._session = self._client, None, None
                with contextlib.suppress(smpp34.SmppError):
                    await client.stop()
            if self._session is None:
                s = self.settings
                client = smpp34.Client(
                    s.host,
                    s.port,
                    s.system_id,
                    s.password.get_secret_value(),
                    bind_type="TRX",
                    system_type=s.system_type,
                    tls=s.tls,
                    window_size=s.window_size,
                    connect_timeout_ms=int(s.connect_timeout_s * 1000),
                )
                self._session = await client.connect()
                self._client = client
            return self._session

    async def _drop(self) -> None:
        async with self._lock:
            client, self._client, self._session = self._client, None, None
        if client is not None:
            with contextlib.suppress(smpp34.SmppError):  # already gone; we only want it closed
                await client.stop()

    async def send(self, target: Recipient, delivery: Delivery) -> Outcome:
        """Submit one case SMS (all its parts) to one number and classify the SMSC's answers."""
        s = self.settings
        plan = sms.plan(delivery.message_for(target.language).sms_text, self.max_parts)
        if plan.part_count == 0:
            return Outcome.failed("empty_text")
        submits = build_submits(
            plan, s.long_message_mode, concat_ref(delivery.message_id, target.address)
        )
        try:
            session = await self._bound()
        except smpp34.SmppError:
            await self._drop()
            return Outcome.retry("bind_failed")
        message_ids: list[str] = []
        for short_message, esm_class, tlvs in submits:
            try:
                resp = await asyncio.wait_for(
                    session.submit_sm(
                        target.address,
                        short_message,
                        source_addr=s.source_addr,
                        source_addr_ton=s.source_addr_ton,
                        source_addr_npi=s.source_addr_npi,
                        dest_addr_ton=s.dest_addr_ton,
                        dest_addr_npi=s.dest_addr_npi,
                        esm_class=esm_class,
                        data_coding=plan.data_coding,
                        tlvs=tlvs,
                    ),
                    s.submit_timeout_s,
                )
            except TimeoutError:
                await self._drop()
                return Outcome.retry("timeout")
            except smpp34.SmppError:
                alive = self._client is not None and await self._client.is_alive()
                if alive:
                    return Outcome.failed("smpp_error")  # codec/protocol: resending won't help
                await self._drop()
                return Outcome.retry("connection_lost")
            if resp.command_status != ESME_ROK:
                return classify_status(resp.command_status, s.throttle_retry_s)
            if resp.message_id:
                message_ids.append(resp.message_id)
        return Outcome.ok(
            f"parts_{len(submits)}", status=ESME_ROK, provider_id=",".join(message_ids) or None
        )

    async def aclose(self) -> None:
        """Unbind and close the SMPP session."""
        session = self._session
        if session is not None:
            try:
                await session.unbind()
            except smpp34.SmppError:
                pass  # the peer may have closed first; we are closing anyway
        await self._drop()
