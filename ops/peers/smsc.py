"""A local SMSC on smpp34's asyncio server: records submit_sm and reassembles messages.

Scripting: `throttle_first` answers ESME_RTHROTTLED to that many submits, `queue_full_first`
ESME_RMSGQFUL; numbers in `invalid_destinations` (or starting with `invalid_prefix`) get
ESME_RINVDSTADR. Concatenated parts (UDH IEI 0x00 or 0x08) and message_payload TLVs are
decoded (GSM-7 unpacked or UCS-2) and joined into `messages`, per number and UDH reference as a
handset joins them (whichever bind each part came on).

Like a carrier: `max_per_second` accepts at most that many submit_sm in any one-second window
per account and throttles the rest (ESME_RTHROTTLED), as Jasmin's throughput cap does; every
accepted part is kept per number with its UDH reference and part number (`parts_to`,
`duplicate_parts`), with the time it was accepted (`max_accepted_in_window`). A submit asking
for a receipt (registered_delivery bit 0) gets a deliver_sm receipt after `receipt_delay_s`:
the standard "id:... stat:DELIVRD" text plus the receipted_message_id and message_state TLVs,
on a receive-capable bind (transceiver or receiver) of the same system_id, the submitting one
first; with none bound it waits, as an SMSC stores receipts, until one binds. Numbers in
`undelivered_destinations` get stat UNDELIV.

`transmitter_only` plays an SMSC that takes no transceiver binds. smpp34's server accepts every
bind and tells only whether a session can receive (receiver or transceiver), so a transceiver
is refused at its first submit_sm (ESME_RINVBNDSTS, then unbound); receiver binds stay welcome,
as they carry the receipts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

import gsm0338  # noqa: F401  (registers the 'gsm03.38' codec)
import smpp34

from ops.peers._runtime import Endpoint, LoopThread, free_port


def decode(payload: bytes, data_coding: int) -> str:
    """Text of a short_message by data_coding: 8 is UCS-2, 0 unpacked GSM 03.38 septets.

    Decoded with the gsm0338 codec, not Reunite's own encoder, so a test compares the channel's
    bytes against an independent reading of the standard.
    """
    if data_coding == 8:
        return payload.decode("utf-16-be")
    return payload.decode("gsm03.38", errors="replace")


ESME_RINVBNDSTS = 0x04
ESM_CLASS_RECEIPT = 0x04
MESSAGE_STATE = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "REJECTD": 8}


@dataclass(frozen=True)
class Submit:
    session_id: str
    destination: str
    source: str
    data_coding: int
    esm_class: int
    short_message: bytes
    payload_tlv: bytes | None
    registered_delivery: int = 0
    at: float = 0.0  # time.monotonic() when it arrived


@dataclass(frozen=True)
class Part:
    """One accepted part as the handset gets it: UDH reference, part count, part number
    (0, 1, 1 for an unsplit message) and the SMSC's message id."""

    destination: str
    ref: int
    total: int
    seq: int
    message_id: str
    at: float


@dataclass(frozen=True)
class SentReceipt:
    message_id: str
    destination: str
    stat: str
    session_id: str


@dataclass(frozen=True)
class SmsMessage:
    destination: str
    text: str
    data_coding: int
    parts: int
    via_payload_tlv: bool


def parse_udh(short_message: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """((ref, total, seq) or None, user data) from a UDH-prefixed short_message."""
    udhl = short_message[0]
    header, data = short_message[1 : 1 + udhl], short_message[1 + udhl :]
    i = 0
    while i + 2 <= len(header):
        iei, length = header[i], header[i + 1]
        value = header[i + 2 : i + 2 + length]
        if iei == 0x00 and length == 3:
            return (value[0], value[1], value[2]), data
        if iei == 0x08 and length == 4:
            return ((value[0] << 8) | value[1], value[2], value[3]), data
        i += 2 + length
    return None, data


@dataclass
class SmscSink:
    """Records what ESMEs submit and answers as scripted."""

    throttle_first: int = 0
    queue_full_first: int = 0
    invalid_destinations: set[str] = field(default_factory=set)
    invalid_prefix: str = "999"
    max_per_second: int = 0  # 0: no cap
    transmitter_only: bool = False
    receipt_delay_s: float = 0.02
    undelivered_destinations: set[str] = field(default_factory=set)
    submits: list[Submit] = field(default_factory=list)
    messages: list[SmsMessage] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)
    accepted: list[Part] = field(default_factory=list)
    receipts: list[SentReceipt] = field(default_factory=list)
    pending_receipts: list[tuple[str, Submit]] = field(default_factory=list)
    binds: int = 0
    refused_transceivers: int = 0
    sessions: dict[str, smpp34.Esme] = field(default_factory=dict)
    _fragments: dict[tuple, dict[int, str]] = field(default_factory=dict)
    _window: deque[float] = field(default_factory=deque)
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, ev: smpp34.SubmitSmEvent) -> tuple[str, Submit] | None:
        """Answer one submit_sm and record it; (message id, submit) when it wants a receipt."""
        payload = next((t.value for t in ev.tlvs if t.tag == smpp34.TLV_MESSAGE_PAYLOAD), None)
        submit = Submit(
            ev.session_id,
            ev.destination_addr,
            ev.source_addr,
            ev.data_coding,
            ev.esm_class,
            bytes(ev.short_message),
            payload,
            ev.registered_delivery,
            time.monotonic(),
        )
        refuse: smpp34.Esme | None = None
        with self._lock:
            self.submits.append(submit)
            self._counter += 1
            n = self._counter
            session = self.sessions.get(ev.session_id)
            status = smpp34.ESME_ROK
            if n <= self.throttle_first:
                status = smpp34.ESME_RTHROTTLED
            elif n <= self.throttle_first + self.queue_full_first:
                status = smpp34.ESME_RMSGQFUL
            elif self.transmitter_only and session is not None and session.can_receive:
                status, refuse = ESME_RINVBNDSTS, session
                self.refused_transceivers += 1
                self.sessions.pop(ev.session_id, None)  # as if its bind had been refused
            elif self._over_rate(submit.at):
                status = smpp34.ESME_RTHROTTLED
            elif ev.destination_addr in self.invalid_destinations or (
                self.invalid_prefix and ev.destination_addr.startswith(self.invalid_prefix)
            ):
                status = smpp34.ESME_RINVDSTADR
            elif payload is not None and ev.short_message:
                # SMPP 3.4: short_message and message_payload must not both carry text.
                status = smpp34.ESME_RINVMSGLEN
            self.answers.append((ev.destination_addr, status))
            message_id = f"smsc-{n}"
            if status == smpp34.ESME_ROK:
                self._window.append(submit.at)
                self._record(submit, message_id)
        if status != smpp34.ESME_ROK:
            ev.reject(status)
            if refuse is not None:
                asyncio.get_running_loop().create_task(_unbind_later(refuse))
            return None
        ev.accept(message_id)
        return (message_id, submit) if submit.registered_delivery & 0x01 else None

    def _over_rate(self, now: float) -> bool:
        if not self.max_per_second:
            return False
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        return len(self._window) >= self.max_per_second

    def receipt_stat(self, destination: str) -> str:
        """What the handset did with it: DELIVRD, or UNDELIV for a scripted number."""
        return "UNDELIV" if destination in self.undelivered_destinations else "DELIVRD"

    def receiver_for(self, submit: Submit) -> smpp34.Esme | None:
        """A bind to send the receipt on: the submitting one if it can receive, else any
        receiver or transceiver of the same system_id."""
        with self._lock:
            own = self.sessions.get(submit.session_id)
            if own is not None and own.can_receive:
                return own
            system_id = own.system_id if own is not None else None
            for esme in self.sessions.values():
                if esme.can_receive and (system_id is None or esme.system_id == system_id):
                    return esme
        return None

    def _record(self, s: Submit, message_id: str) -> None:
        if s.payload_tlv is not None:
            self.accepted.append(Part(s.destination, 0, 1, 1, message_id, s.at))
            text = decode(s.payload_tlv, s.data_coding)
            self.messages.append(SmsMessage(s.destination, text, s.data_coding, 1, True))
            return
        concat, data = (None, s.short_message)
        if s.esm_class & 0x40:
            concat, data = parse_udh(s.short_message)
        if concat is None:
            self.accepted.append(Part(s.destination, 0, 1, 1, message_id, s.at))
            text = decode(data, s.data_coding)
            self.messages.append(SmsMessage(s.destination, text, s.data_coding, 1, False))
            return
        ref, total, seq = concat
        self.accepted.append(Part(s.destination, ref, total, seq, message_id, s.at))
        # A handset joins parts by sender, reference and count, whichever bind carried them.
        key = (s.source, s.destination, ref, total)
        parts = self._fragments.setdefault(key, {})
        parts[seq] = decode(data, s.data_coding)  # a resubmitted part just overwrites
        if len(parts) == total:
            del self._fragments[key]
            text = "".join(parts[i] for i in range(1, total + 1))
            self.messages.append(SmsMessage(s.destination, text, s.data_coding, total, False))

    def messages_to(self, destination: str) -> list[SmsMessage]:
        """Reassembled messages for one number."""
        with self._lock:
            return [m for m in self.messages if m.destination == destination]

    def parts_to(self, destination: str) -> list[Part]:
        """Every part accepted for one number, in the order accepted."""
        with self._lock:
            return [p for p in self.accepted if p.destination == destination]

    def duplicate_parts(self) -> dict[tuple[str, int, int], int]:
        """(number, UDH reference, part number) accepted more than once -> times accepted."""
        seen: dict[tuple[str, int, int], int] = {}
        with self._lock:
            for p in self.accepted:
                key = (p.destination, p.ref, p.seq)
                seen[key] = seen.get(key, 0) + 1
        return {k: n for k, n in seen.items() if n > 1}

    def max_accepted_in_window(self, window_s: float = 1.0) -> int:
        """The most submits accepted within any window_s: what the carrier saw per second."""
        with self._lock:
            times = sorted(p.at for p in self.accepted)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def receipts_for(self, destination: str) -> list[SentReceipt]:
        """Receipts sent for one number."""
        with self._lock:
            return [r for r in self.receipts if r.destination == destination]


def receipt_text(message_id: str, stat: str, submitted: datetime, done: datetime) -> bytes:
    """The SMPP 3.4 Appendix B receipt text an SMSC puts in short_message."""
    delivered = "001" if stat == "DELIVRD" else "000"
    err = "000" if stat == "DELIVRD" else "001"
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{submitted:%y%m%d%H%M} "
        f"done date:{done:%y%m%d%H%M} stat:{stat} err:{err} text:"
    ).encode()


async def _quietly(coro) -> None:
    # smpp34's server never matches a receiver bind's deliver_sm_resp (it waits for it only on
    # transmitter and transceiver binds), so a receipt on a receiver bind is sent, answered by
    # the ESME, and times out here: fire and forget, as far as the sink is concerned.
    with suppress(smpp34.SmppError, TimeoutError, RuntimeError):
        await asyncio.wait_for(coro, 5)


async def _unbind_later(esme: smpp34.Esme) -> None:
    # After its submit_sm_resp is on the wire: an unbind overtaking it would fail the submit
    # as a lost connection instead of the refusal it is.
    await asyncio.sleep(0.2)
    await _quietly(esme.unbind())


async def _send_receipt(sink: SmscSink, message_id: str, submit: Submit, wait: bool) -> None:
    if wait:
        await asyncio.sleep(sink.receipt_delay_s)
    esme = sink.receiver_for(submit)
    if esme is None:
        with sink._lock:
            sink.pending_receipts.append((message_id, submit))
        return
    stat = sink.receipt_stat(submit.destination)
    now = datetime.now(UTC)
    with sink._lock:
        sink.receipts.append(SentReceipt(message_id, submit.destination, stat, esme.session_id))
    tlvs = [
        smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\x00"),
        smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes((MESSAGE_STATE[stat],))),
    ]
    await _quietly(
        esme.deliver_sm(
            submit.source,
            receipt_text(message_id, stat, now, now),
            source_addr=submit.destination,
            esm_class=ESM_CLASS_RECEIPT,
            tlvs=tlvs,
        )
    )


@contextmanager
def running(sink: SmscSink, host: str = "127.0.0.1", port: int = 0) -> Iterator[Endpoint]:
    """Run the SMSC in a background thread; yields Endpoint('smpp://host:port')."""
    port = port or free_port(host)
    runner = LoopThread("smsc-sink")
    runner.start()
    server = smpp34.Server(host, port, system_id="ReuniteSMSC")

    async def start() -> asyncio.Task:
        await server.start()
        return asyncio.get_running_loop().create_task(_serve(server, sink))

    task = runner.call(start())
    try:
        yield Endpoint(f"smpp://{host}:{port}")
    finally:

        async def stop() -> None:
            # Unbind bound ESMEs first: stopping the server alone leaves sessions running.
            for esme in list(sink.sessions.values()):
                with suppress(smpp34.SmppError, TimeoutError):
                    await asyncio.wait_for(esme.unbind(), 2)
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await server.stop()

        runner.call(stop())
        runner.stop()


async def _serve(server: smpp34.Server, sink: SmscSink) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()

    def spawn(coro) -> None:
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        while True:
            ev = await server.next()
            if isinstance(ev, smpp34.SubmitSmEvent):
                wanted = sink.handle(ev)
                if wanted is not None:
                    spawn(_send_receipt(sink, *wanted, wait=True))
            elif isinstance(ev, smpp34.Esme):
                with sink._lock:
                    sink.binds += 1
                    sink.sessions[ev.session_id] = ev
                    waiting = sink.pending_receipts if ev.can_receive else []
                    sink.pending_receipts = [] if ev.can_receive else sink.pending_receipts
                for message_id, submit in waiting:
                    spawn(_send_receipt(sink, message_id, submit, wait=False))
            elif isinstance(ev, smpp34.Unbound):
                with sink._lock:
                    sink.sessions.pop(ev.session_id, None)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
