"""SMPP delivery receipts: what a deliver_sm says, read as soon as the SMSC sends it.

`parse_receipt` reads the receipted_message_id and message_state TLVs and the SMPP 3.4
Appendix B text ("id:... sub:... dlvrd:... stat:DELIVRD err:..."); `ReceiptReader` reads a
bind's deliver_sm on a thread of its own and hands each receipt to the part store
(`channels.sms_parts`), which turns a receipt for every part into `delivered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import smpp34

from channels.sms_parts import Receipt

log = logging.getLogger(__name__)

# SMPP 3.4 §5.3.2; smpp34 re-exports them only at run time, so type checkers cannot see them.
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
ESM_CLASS_TYPE = 0x3C  # bits 2-5: message type
ESM_CLASS_SMSC_RECEIPT = 0x04
# message_state TLV (SMPP 3.4 §5.2.28) -> the stat word of the receipt text.
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_RECEIPT_ID = re.compile(r"(?:^|\s)id:(\S+)", re.IGNORECASE)
_RECEIPT_STAT = re.compile(r"(?:^|\s)stat:(\w+)", re.IGNORECASE)


def parse_receipt(
    esm_class: int, short_message: bytes, tlvs: Sequence[tuple[int, bytes]]
) -> Receipt | None:
    """A deliver_sm -> the receipt it carries; None for anything else (a handset's reply).

    The id is the receipted_message_id TLV when the SMSC sends it (SMPP 3.4), else the
    "id:" of the Appendix B text ("id:... sub:... dlvrd:... stat:DELIVRD err:..."); the state
    is the text's "stat:", else the message_state TLV. Only DELIVRD is delivered.
    """
    if esm_class & ESM_CLASS_TYPE != ESM_CLASS_SMSC_RECEIPT:
        return None
    text = short_message.decode("latin-1")
    fields = dict(tlvs)
    provider_id = fields.get(TLV_RECEIPTED_MESSAGE_ID, b"").rstrip(b"\x00").decode("latin-1")
    if not provider_id and (found := _RECEIPT_ID.search(text)):
        provider_id = found.group(1)
    stat = ""
    if found := _RECEIPT_STAT.search(text):
        stat = found.group(1).upper()
    elif (state := fields.get(TLV_MESSAGE_STATE)) and len(state) == 1:
        stat = MESSAGE_STATES.get(state[0], "UNKNOWN")
    if not provider_id or not stat:
        return None
    return Receipt(provider_id, stat == "DELIVRD", stat)


class ReceiptReader:
    """Reads delivery receipts on a thread and event loop of its own.

    A worker's event loop runs only while a task runs (channels.runtime.run), but receipts
    come whenever the carrier has them, seconds or hours after the submit. smpp34 answers each
    deliver_sm itself and queues it for us: unread, it would wait for the next SMS task (and
    be lost with the process). This thread reads at once, records each receipt (`on_receipt`)
    and flushes the ledger snapshot about once a second (`flush`). A receipt that cannot be
    recorded (Redis away) is kept and tried again at the next flush.
    """

    FLUSH_EVERY_S = 1.0
    KEEP = 10_000  # receipts kept for another try while recording fails

    def __init__(self, on_receipt: Callable[[Receipt], None], flush: Callable[[], None]) -> None:
        self.on_receipt = on_receipt
        self.flush = flush
        self.read_count = 0
        self._retry: deque[Receipt] = deque(maxlen=self.KEEP)
        self._stopping = False
        self._receiver: tuple[smpp34.Client, smpp34.Smsc] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="smpp-receipts", daemon=True)
        self._thread.start()
        self._call(self._tick())

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Awaitable[Any]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    def read(self, session: smpp34.Smsc) -> None:
        """Read a transceiver bind's receipts until it disconnects."""
        self._call(self._drain(session))

    def listen(
        self, bind: Callable[[], Awaitable[tuple[smpp34.Client, smpp34.Smsc]]], retry_s: float
    ) -> None:
        """Keep a receiver bind open (bound again after retry_s when lost) and read it."""
        self._call(self._listen(bind, retry_s))

    async def _drain(self, session: smpp34.Smsc) -> None:
        while True:
            try:
                event = await session.next()
            except smpp34.SmppError:
                return
            if isinstance(event, smpp34.Disconnected):
                return
            receipt = parse_receipt(
                event.esm_class,
                bytes(event.short_message),
                [(t.tag, bytes(t.value)) for t in event.tlvs],
            )
            if receipt is not None:
                self.read_count += 1
                self._record(receipt)

    async def _listen(
        self, bind: Callable[[], Awaitable[tuple[smpp34.Client, smpp34.Smsc]]], retry_s: float
    ) -> None:
        while not self._stopping:
            try:
                self._receiver = await bind()
            except smpp34.SmppError:
                await asyncio.sleep(retry_s)
                continue
            await self._drain(self._receiver[1])
            client, self._receiver = self._receiver[0], None
            with contextlib.suppress(smpp34.SmppError):
                await client.stop()
            if not self._stopping:
                await asyncio.sleep(retry_s)

    def _record(self, receipt: Receipt) -> None:
        try:
            self.on_receipt(receipt)
        except Exception as exc:  # Redis or the database away: keep it, try again
            log.warning("receipt for %s not recorded yet: %s", receipt.provider_id, exc)
            self._retry.append(receipt)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.FLUSH_EVERY_S)
            self._flush()

    def _flush(self) -> None:
        for _ in range(len(self._retry)):
            self._record(self._retry.popleft())
        try:
            self.flush()
        except Exception as exc:  # the next tick writes the snapshot again
            log.warning("receipt snapshot not written yet: %s", exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Unbind the receiver, record what is pending, and stop the thread."""

        async def wind_down() -> None:
            self._stopping = True
            if self._receiver is not None:
                client, session = self._receiver
                with contextlib.suppress(smpp34.SmppError, TimeoutError):
                    await asyncio.wait_for(session.unbind(), timeout / 2)
                with contextlib.suppress(smpp34.SmppError):
                    await client.stop()
            self._flush()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(wind_down(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
