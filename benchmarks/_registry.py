"""Synthetic registry rows shared by the benchmarks (bulk SQL, one ciphertext for all)."""

from __future__ import annotations


def seed_apns_devices(partner_id: int, count: int, chunk: int = 20_000) -> None:
    """Register APNs devices d0..d{count-1}; the sinks ignore tokens, so all share one."""
    from sqlalchemy import insert

    from geo.devices.models import Device
    from ops.platform import crypto
    from ops.platform.db import session_scope

    token = crypto.encrypt("b" * 64)
    for start in range(0, count, chunk):
        with session_scope() as s:
            s.execute(
                insert(Device),
                [
                    {
                        "partner_id": partner_id,
                        "external_id": f"d{i}",
                        "platform": "apns",
                        "address_enc": token,
                        "locale": "zh-CN",
                        "opted_in": True,
                        "active": True,
                    }
                    for i in range(start, min(count, start + chunk))
                ],
            )
