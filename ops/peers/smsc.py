"""A local SMSC on smpp34's asyncio server: records submit_sm and reassembles messages.

Scripting: `throttle_first` answers ESME_RTHROTTLED to that many submits, `queue_full_first`
ESME_RMSGQFUL; numbers in `invalid_destinations` (or starting with `invalid_prefix`) get
ESME_RINVDSTADR. Concatenated parts (UDH IEI 0x00 or 0x08) and message_payload TLVs are
decoded (GSM-7 unpacked or UCS-2) and joined into `messages`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Submit:
    session_id: str
    destination: str
    source: str
    data_coding: int
    esm_class: int
    short_message: bytes
    payload_tlv: bytes | None


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
    submits: list[Submit] = field(default_factory=list)
    messages: list[SmsMessage] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)
    binds: int = 0
    sessions: dict[str, smpp34.Esme] = field(default_factory=dict)
    _fragments: dict[tuple, dict[int, str]] = field(default_factory=dict)
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, ev: smpp34.SubmitSmEvent) -> None:
        """Answer one submit_sm and record it."""
        payload = next((t.value for t in ev.tlvs if t.tag == smpp34.TLV_MESSAGE_PAYLOAD), None)
        submit = Submit(
            ev.session_id,
            ev.destination_addr,
            ev.source_addr,
            ev.data_coding,
            ev.esm_class,
            bytes(ev.short_message),
            payload,
        )
        with self._lock:
            self.submits.append(submit)
            self._counter += 1
            n = self._counter
            status = smpp34.ESME_ROK
            if n <= self.throttle_first:
                status = smpp34.ESME_RTHROTTLED
            elif n <= self.throttle_first + self.queue_full_first:
                status = smpp34.ESME_RMSGQFUL
            elif ev.destination_addr in self.invalid_destinations or (
                self.invalid_prefix and ev.destination_addr.startswith(self.invalid_prefix)
            ):
                status = smpp34.ESME_RINVDSTADR
            elif payload is not None and ev.short_message:
                # SMPP 3.4: short_message and message_payload must not both carry text.
                status = smpp34.ESME_RINVMSGLEN
            self.answers.append((ev.destination_addr, status))
            if status == smpp34.ESME_ROK:
                self._record(submit)
        if status == smpp34.ESME_ROK:
            ev.accept(f"smsc-{n}")
        else:
            ev.reject(status)

    def _record(self, s: Submit) -> None:
        if s.payload_tlv is not None:
            text = decode(s.payload_tlv, s.data_coding)
            self.messages.append(SmsMessage(s.destination, text, s.data_coding, 1, True))
            return
        if not s.esm_class & 0x40:
            text = decode(s.short_message, s.data_coding)
            self.messages.append(SmsMessage(s.destination, text, s.data_coding, 1, False))
            return
        concat, data = parse_udh(s.short_message)
        if concat is None:
            text = decode(data, s.data_coding)
            self.messages.append(SmsMessage(s.destination, text, s.data_coding, 1, False))
            return
        ref, total, seq = concat
        key = (s.session_id, s.destination, ref, total)
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
    while True:
        ev = await server.next()
        if isinstance(ev, smpp34.SubmitSmEvent):
            sink.handle(ev)
        elif isinstance(ev, smpp34.Esme):
            with sink._lock:
                sink.binds += 1
                sink.sessions[ev.session_id] = ev
        elif isinstance(ev, smpp34.Unbound):
            with sink._lock:
                sink.sessions.pop(ev.session_id, None)
