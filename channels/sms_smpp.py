"""SMS over SMPP 3.4, with the `smpp34` client (Rust/tokio core, asyncio API).

smpp34's client is usable for everything we need: transmitter, transceiver and receiver binds,
submit_sm with every field and TLVs, command_status on the response (it does not raise on a
NAK) and inbound deliver_sm, so aiosmpplib is not needed. Long texts go out either as
UDH-concatenated parts (esm_class 0x40, 6-byte UDH per part) or whole in the message_payload
TLV when the carrier prefers to split itself; never both in one submit_sm. Area broadcast by
cell is the carrier's HTTP API (channels.sms_http.SmsHttpChannel.broadcast_area), not SMPP.

Carriers count, cap and bill submit_sm PDUs, not messages: each part takes a token of the
bind's shared bucket (`Pacer`), a throttled part holds the bucket for every worker and is
resubmitted alone, and parts already accepted are never sent again (`channels.sms_parts`).
Delivery receipts are asked for (registered_delivery) and read on a thread of their own
(`ReceiptReader`): from the transceiver bind itself, or from a receiver bind the channel opens
beside a transmitter bind, since a transmitter cannot receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import ClassVar, Literal

import smpp34

from channels import sms
from channels.base import Delivery, Outcome, Pacer, Recipient
from channels.smpp_receipts import ReceiptReader
from channels.sms_parts import MemoryParts, PartStore
from ops.platform.channel_settings import SMS_MAX_PARTS, SmppSettings

ESM_CLASS_UDHI = 0x40
# SMPP 3.4 §5.3.2; smpp34 re-exports them only at run time, so type checkers cannot see them.
TLV_MESSAGE_PAYLOAD = 0x0424
MAX_SHORT_MESSAGE = 254
REGISTERED_DELIVERY_FINAL = 0x01  # a receipt on final success or failure
BIND_TYPES = {"transmitter": "TX", "transceiver": "TRX"}

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
    """Submits alert SMS to an SMSC over one transmitter or transceiver bind, part by part."""

    name: ClassVar[str] = "sms_smpp"
    rate_per_second: ClassVar[float] = 20.0  # submit_sm PDUs (parts) per bind; carriers cap 10-30
    batch_size: ClassVar[int] = 50
    concurrency: ClassVar[int] = 10
    max_body_bytes: ClassVar[int] = MAX_SHORT_MESSAGE
    # The channel takes a token per part itself: the fan-out must not take one per message.
    paces_parts: ClassVar[bool] = True

    def __init__(
        self,
        settings: SmppSettings,
        *,
        max_parts: int = SMS_MAX_PARTS,
        pacer: Pacer | None = None,
        parts: PartStore | None = None,
    ) -> None:
        self.settings = settings
        self.max_parts = max_parts
        self.pacer = pacer
        self.parts: PartStore = parts if parts is not None else MemoryParts()
        self._client: smpp34.Client | None = None
        self._session: smpp34.Smsc | None = None
        self._lock = asyncio.Lock()
        self._receipts: ReceiptReader | None = None

    def _client_for(self, bind_type: str) -> smpp34.Client:
        s = self.settings
        return smpp34.Client(
            s.host,
            s.port,
            s.system_id,
            s.password.get_secret_value(),
            bind_type=bind_type,
            system_type=s.system_type,
            tls=s.tls,
            window_size=s.window_size,
            connect_timeout_ms=int(s.connect_timeout_s * 1000),
        )

    async def _bound(self) -> smpp34.Smsc:
        async with self._lock:
            if self._client is not None and not await self._client.is_alive():
                # The SMSC unbound or the TCP link dropped since the last send: bind again.
                client, self._client, self._session = self._client, None, None
                with contextlib.suppress(smpp34.SmppError):
                    await client.stop()
            if self._session is None:
                client = self._client_for(BIND_TYPES[self.settings.bind_type])
                self._session = await client.connect()
                self._client = client
                self._read_receipts(self._session)
            return self._session

    def _read_receipts(self, session: smpp34.Smsc) -> None:
        if not self.settings.delivery_receipts:
            return
        if self._receipts is None:
            self._receipts = ReceiptReader(self.parts.receipt, self.parts.flush)
            if self.settings.bind_type == "transmitter":
                # A transmitter cannot receive: the SMSC sends receipts to a receiver bind.
                self._receipts.listen(self._bind_receiver, self.settings.receiver_retry_s)
        if self.settings.bind_type == "transceiver":
            self._receipts.read(session)

    async def _bind_receiver(self) -> tuple[smpp34.Client, smpp34.Smsc]:
        client = self._client_for("RX")
        return client, await client.connect()

    async def _drop(self) -> None:
        async with self._lock:
            client, self._client, self._session = self._client, None, None
        if client is not None:
            with contextlib.suppress(smpp34.SmppError):  # already gone; we only want it closed
                await client.stop()

    async def send(self, target: Recipient, delivery: Delivery) -> Outcome:
        """Submit the parts of one case SMS to one number that the SMSC has not yet accepted,
        and classify its answers."""
        s = self.settings
        plan = sms.plan(delivery.message_for(target.language).sms_text, self.max_parts)
        if plan.part_count == 0:
            return Outcome.failed("empty_text")
        submits = build_submits(
            plan, s.long_message_mode, concat_ref(delivery.message_id, target.address)
        )
        total = len(submits)
        done = self.parts.accepted(delivery.message_id, target)
        missing = [seq for seq in range(1, total + 1) if seq not in done]
        if missing:  # none when a redelivered batch finds every part already accepted
            try:
                session = await self._bound()
            except smpp34.SmppError:
                await self._drop()
                return Outcome.retry("bind_failed")
            for seq in missing:
                outcome, message_id = await self._submit(
                    session, target.address, plan, submits[seq - 1]
                )
                if outcome is not None:
                    return outcome
                self.parts.accept(delivery.message_id, target, seq, total, message_id)
                done[seq] = message_id
        ids = [done[seq] for seq in range(1, total + 1) if done[seq]]
        return Outcome.ok(f"parts_{total}", status=ESME_ROK, provider_id=",".join(ids) or None)

    async def _submit(
        self,
        session: smpp34.Smsc,
        address: str,
        plan: sms.SmsPlan,
        part: tuple[bytes, int, list[smpp34.Tlv]],
    ) -> tuple[Outcome | None, str]:
        """One part, paced; a throttle holds the bind's bucket and resubmits this part alone.
        (None, SMSC message id) when accepted, else (the outcome to report, '')."""
        s = self.settings
        short_message, esm_class, tlvs = part
        for resubmit in range(s.throttle_resubmits + 1):
            if self.pacer is not None:
                await self.pacer.take()
            try:
                resp = await asyncio.wait_for(
                    session.submit_sm(
                        address,
                        short_message,
                        source_addr=s.source_addr,
                        source_addr_ton=s.source_addr_ton,
                        source_addr_npi=s.source_addr_npi,
                        dest_addr_ton=s.dest_addr_ton,
                        dest_addr_npi=s.dest_addr_npi,
                        esm_class=esm_class,
                        data_coding=plan.data_coding,
                        registered_delivery=(
                            REGISTERED_DELIVERY_FINAL if s.delivery_receipts else 0
                        ),
                        tlvs=tlvs,
                    ),
                    s.submit_timeout_s,
                )
            except TimeoutError:
                await self._drop()
                return Outcome.retry("timeout"), ""
            except smpp34.SmppError:
                alive = self._client is not None and await self._client.is_alive()
                if alive:
                    return Outcome.failed("smpp_error"), ""  # codec/protocol: resending won't
                await self._drop()
                return Outcome.retry("connection_lost"), ""
            if resp.command_status == ESME_ROK:
                return None, resp.message_id or ""
            if resp.command_status != ESME_RTHROTTLED or resubmit == s.throttle_resubmits:
                if resp.command_status == ESME_RTHROTTLED and self.pacer is not None:
                    self.pacer.hold(s.throttle_retry_s)
                return classify_status(resp.command_status, s.throttle_retry_s), ""
            # Too fast for the carrier: every worker on this bind backs off, then this part
            # (only this part) goes again.
            if self.pacer is not None:
                self.pacer.hold(s.throttle_retry_s)
            else:
                await asyncio.sleep(s.throttle_retry_s)
        raise AssertionError("unreachable: the last resubmit returns")

    async def aclose(self) -> None:
        """Unbind, close the SMPP session and stop reading receipts."""
        session = self._session
        if session is not None:
            try:
                await session.unbind()
            except smpp34.SmppError:
                pass  # the peer may have closed first; we are closing anyway
        await self._drop()
        reader, self._receipts = self._receipts, None
        if reader is not None:
            await asyncio.to_thread(reader.stop)
