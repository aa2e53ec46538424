"""Firebase Cloud Messaging channel (HTTP v1 API, service-account OAuth2).

One message per request to POST /v1/projects/<id>/messages:send. Very large areas go out as
topic messages, one per coarse geo cell (`reunite-cell-<cell>`), and Google fans them out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import httpx
import jwt

from channels.base import (
    Clock,
    Delivery,
    Outcome,
    Recipient,
    parse_retry_after,
)
from channels.messages import RenderedMessage
from ops.platform.channel_settings import FcmSettings

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOPIC_PREFIX = "reunite-cell-"
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


def topic_for_cell(cell_id: str) -> str:
    """FCM topic name for a geo cell; devices subscribe to the one they are in."""
    return f"{TOPIC_PREFIX}{cell_id}"


class _TokenUnavailable(Exception):
    """The OAuth2 token endpoint did not give us a token; carries the outcome to report."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class AccessToken:
    """OAuth2 access token from a service-account JWT grant, cached until near expiry."""

    def __init__(self, settings: FcmSettings, client: httpx.AsyncClient, clock: Clock) -> None:
        self._s = settings
        self._client = client
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.grants = 0

    def _assertion(self, now: float) -> str:
        headers = {"kid": self._s.private_key_id} if self._s.private_key_id else None
        claims = {
            "iss": self._s.client_email,
            "scope": SCOPE,
            "aud": self._s.token_uri,
            "iat": int(now),
            "exp": int(now) + 3600,
        }
        return jwt.encode(
            claims, self._s.private_key.get_secret_value(), algorithm="RS256", headers=headers
        )

    async def get(self) -> str:
        """A valid access token, fetched once for all concurrent callers when due."""
        async with self._lock:
            now = self._clock()
            if self._token is not None and now < self._expires_at - self._s.token_margin_s:
                return self._token
            try:
                response = await self._client.post(
                    self._s.token_uri,
                    data={"grant_type": JWT_BEARER, "assertion": self._assertion(now)},
                )
            except httpx.TimeoutException:
                raise _TokenUnavailable(Outcome.retry("oauth_timeout")) from None
            except httpx.TransportError as exc:
                raise _TokenUnavailable(
                    Outcome.retry(f"oauth_transport_{type(exc).__name__}")
                ) from None
            if response.status_code != 200:
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"), now)
                if status == 429 or status >= 500:
                    raise _TokenUnavailable(Outcome.retry(f"oauth_http_{status}", retry_after))
                # invalid_grant and friends: a configuration problem, not a transient one.
                raise _TokenUnavailable(Outcome.failed(f"oauth_http_{status}", status=status))
            body = response.json()
            self._token = str(body["access_token"])
            self._expires_at = now + float(body.get("expires_in", 3600))
            self.grants += 1
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget token if still current (FCM answered 401 for it)."""
        if token == self._token:
            self._token = None


def _error_details(response: httpx.Response) -> tuple[str, str, bool]:
    """(status, errorCode, token_field_violation) from a google.rpc error body."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return "", "", False
    status = str(error.get("status", ""))
    code = ""
    token_field = "registration token" in str(error.get("message", "")).lower()
    for detail in error.get("details", []) or []:
        if detail.get("@type") == _FCM_ERROR_TYPE:
            code = str(detail.get("errorCode", ""))
        for violation in detail.get("fieldViolations", []) or []:
            if str(violation.get("field", "")).endswith("token"):
                token_field = True
    return status, code, token_field


def classify(
    status: int,
    error_status: str,
    error_code: str,
    token_field: bool,
    retry_after: float | None,
    *,
    topic: bool = False,
) -> Outcome:
    """FCM answer -> outcome; dead_target only for device-token sends."""
    reason = error_code or error_status or f"http_{status}"
    if 200 <= status < 300:
        return Outcome.ok(status=status)
    if not topic:
        if status == 404 or error_code == "UNREGISTERED":
            return Outcome.dead_target("UNREGISTERED", status=status)
        if status == 400 and "INVALID_ARGUMENT" in (error_status, error_code) and token_field:
            return Outcome.dead_target("INVALID_ARGUMENT", status=status)
    if status == 429:
        return Outcome.throttle(reason, retry_after, status=status)
    if status >= 500:
        return Outcome.retry(reason, retry_after, status=status)
    return Outcome.failed(reason, status=status)


class FcmChannel:
    """Sends alert notifications to Android devices and geo-cell topics through FCM v1."""

    name: ClassVar[str] = "fcm"
    rate_per_second: ClassVar[float] = 10_000.0  # the 600k/min project quota
    concurrency: ClassVar[int] = 100
    max_body_bytes: ClassVar[int] = 4096
    batch_size: ClassVar[int] = 500

    def __init__(self, settings: FcmSettings, *, clock: Clock = time.time) -> None:
        self.settings = settings
        self._clock = clock
        t = settings.transport
        self._client = httpx.AsyncClient(
            verify=t.ssl_verify(),
            timeout=httpx.Timeout(t.timeout_s, connect=t.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.max_connections),
        )
        self.access = AccessToken(settings, self._client, clock)
        self._url = (
            f"{settings.base_url.rstrip('/')}/v1/projects/{settings.project_id}/messages:send"
        )

    def build_message(
        self, message: RenderedMessage, delivery: Delivery, *, token: str | None, topic: str | None
    ) -> dict[str, Any]:
        """The v1 request body for a device token or a topic."""
        ttl = max(0, round(delivery.expires_at.timestamp() - self._clock()))
        ttl = min(ttl, self.settings.default_ttl_s) if self.settings.default_ttl_s else ttl
        notification: dict[str, Any] = {"title": message.title, "body": message.body}
        if message.photo_url:
            notification["image"] = message.photo_url
        body: dict[str, Any] = {
            "notification": notification,
            # FCM data values must be strings.
            "data": {
                "case_id": delivery.case_id,
                "kind": str(delivery.kind),
                "status": str(delivery.status),
                "wave": str(delivery.wave),
                "link": message.deep_link,
                "message_id": delivery.message_id,
            },
            "android": {
                "priority": "high",
                "ttl": f"{ttl}s",
                "collapse_key": delivery.collapse_key,
                "notification": {
                    "tag": delivery.collapse_key,
                    "channel_id": self.settings.android_channel_id,
                },
            },
        }
        if token is not None:
            body["token"] = token
        if topic is not None:
            body["topic"] = topic
        return {"message": body}

    async def send(self, target: Recipient, delivery: Delivery) -> Outcome:
        """Send one case message to one registration token and classify the answer."""
        message = delivery.message_for(target.language)
        return await self._send(
            self.build_message(message, delivery, token=target.address, topic=None),
            delivery,
            topic=False,
        )

    async def send_topic(self, topic: str, delivery: Delivery, language: str = "zh-CN") -> Outcome:
        """Send one case message to a topic (e.g. topic_for_cell(cell)); Google fans it out."""
        message = delivery.message_for(language)
        return await self._send(
            self.build_message(message, delivery, token=None, topic=topic), delivery, topic=True
        )

    async def _send(self, body: dict[str, Any], delivery: Delivery, *, topic: bool) -> Outcome:
        if delivery.expires_at.timestamp() <= self._clock():
            return Outcome.failed("expired")
        outcome = await self._post(body, topic=topic)
        if outcome.reason == "UNAUTHENTICATED":
            # Our access token was revoked or expired early: fetch a new one, try once more.
            outcome = await self._post(body, topic=topic)
        return outcome

    async def _post(self, body: dict[str, Any], *, topic: bool) -> Outcome:
        try:
            token = await self.access.get()
        except _TokenUnavailable as exc:
            return exc.outcome
        try:
            response = await self._client.post(
                self._url, json=body, headers={"authorization": f"Bearer {token}"}
            )
        except httpx.TimeoutException:
            return Outcome.retry("timeout")
        except httpx.TransportError as exc:
            return Outcome.retry(f"transport_{type(exc).__name__}")
        if response.status_code == 401:
            self.access.invalidate(token)
            return Outcome.retry("UNAUTHENTICATED", status=401)
        if response.status_code == 200:
            return Outcome.ok(status=200, provider_id=response.json().get("name"))
        error_status, code, token_field = _error_details(response)
        retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        return classify(
            response.status_code, error_status, code, token_field, retry_after, topic=topic
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
