"""The notifier's core, Faust-free: inbox, dispatcher, per-channel workers, retries, acks.

Flow: `ingest` keeps each escalation in the ledger's inbox (before Kafka's offset is committed),
`dispatch_once` plans every account whose grouping window has closed and records the plan's
rows, and each channel's workers send its messages with retries, recording the intent
(`sending`) before the request and the outcome after. `start` re-queues what a stopped
notifier left open (see `recover`). Kafka is at the edge: `Notifier` gets a dead-letter
callback and raw bytes.

Retractions (CONTRACT.md, "Time, late facts and retractions"): `ingest` keeps each in the
ledger; `dispatch_once` settles them (`Ledger.settle`): deliveries not yet attempted are
cancelled (`retracted`), and every recipient that got the escalation, or may have, gets one
correction, sent by the same workers with the same retries and dead letters. A worker claims
its rows right before every attempt (`Ledger.claim`), so a message queued, held by a rate limit
or retrying drops a retracted escalation before it goes out. An escalation retracted before it
was planned (it waited for its group window, or its retraction came first) and a `quiet` one
(its SLA had ended when the rung was published) are recorded for their recipients, not sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiosmtplib
import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from greenlane.notify import channels as ch
from greenlane.notify.config import ChannelConfig, NotifyConfig
from greenlane.notify.ledger import (
    FAILED,
    PLANNED,
    QUIET,
    RETRACTED,
    SENDING,
    SENT,
    UNCERTAIN_SKIPPED,
    Ledger,
    OpenMessage,
)
from greenlane.notify.metrics import NotifyMetrics
from greenlane.notify.render import (
    Rendered,
    correction_context,
    item_context,
    render,
    render_correction,
    verify_ack,
)
from greenlane.notify.routing import plan
from greenlane.notify.settings import NotifySettings

log = logging.getLogger(__name__)

DeadLetter = Callable[[str, dict[str, Any]], Awaitable[None]]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Transient(Exception):
    """Worth another try: 5xx, 429, rate-limit codes, timeouts, connection errors."""


class Permanent(Exception):
    """Not worth another try: 4xx, a refused recipient, a rejected message."""


class Withdrawn(Exception):
    """Every escalation of the message was retracted before the attempt: nothing to send."""


ROBOTS_AND_MAIL = ("wecom", "dingtalk", "feishu", "email")
QUIET_REASON = "quiet: the SLA had ended when the rung was published"
WITHDRAWN = {
    "zh": "该升级通知已撤回，无需确认",
    "en": "this escalation was withdrawn; nothing to acknowledge",
}


@dataclass(frozen=True, slots=True)
class Job:
    """A message for a channel worker. `uncertain`: it may already have been sent."""

    message_id: str
    channel: str
    recipient: str
    escalation_ids: tuple[str, ...]
    roles: Mapping[str, tuple[str, ...]]
    names: tuple[str, ...]
    uncertain: bool = False
    retraction_id: str = ""  # set: a correction of that retraction (of escalation_ids[0])


class RateLimiter:
    """At most `per_minute` starts in any 60 s (a sliding window); None: no limit."""

    def __init__(self, per_minute: int | None) -> None:
        self.per_minute = per_minute
        self.starts: deque[float] = deque()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.per_minute is None:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                while self.starts and now - self.starts[0] >= 60.0:
                    self.starts.popleft()
                if len(self.starts) < self.per_minute:
                    self.starts.append(now)
                    return
                await asyncio.sleep(60.0 - (now - self.starts[0]))


REQUIRED = {
    "escalation": ("escalation_id", "sla_id", "account_id", "request_id", "rung", "sla_due_at"),
    "retraction": ("retraction_id", "retracts", "sla_id", "account_id", "reason", "at"),
}
TIME_FIELD = {"escalation": "sla_due_at", "retraction": "at"}


def decode_record(raw: bytes | None) -> tuple[dict[str, Any] | None, str]:
    """An `escalation` or `retraction` record from the wire, or None and the dead-letter
    reason."""
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None, "bad_json"
    if not isinstance(value, dict):
        return None, "not_an_object"
    kind = value.get("record_type")
    if kind not in REQUIRED:
        return None, "not_an_escalation"
    for key in REQUIRED[kind]:
        if value.get(key) in (None, ""):
            return None, f"missing_field:{key}"
    try:
        instant = datetime.fromisoformat(str(value[TIME_FIELD[kind]]))
    except ValueError:
        return None, "bad_time"
    if instant.tzinfo is None:
        return None, "naive_time"
    return value, ""


decode_escalation = decode_record  # the name before retractions


class Notifier:
    """Everything between an escalation record and the receivers, without Kafka."""

    def __init__(
        self,
        config: NotifyConfig,
        settings: NotifySettings,
        ledger: Ledger,
        dead_letter: DeadLetter,
        *,
        metrics: NotifyMetrics | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config = config
        self.settings = settings
        self.ledger = ledger
        self.dead_letter = dead_letter
        self.metrics = metrics or NotifyMetrics()
        self.clock = clock
        self.lang = settings.lang or config.lang
        self.window_s = (
            settings.group_window_s
            if settings.group_window_s is not None
            else config.group_window_s
        )
        self.queues: dict[str, asyncio.Queue[Job]] = {n: asyncio.Queue() for n in config.channels}
        self.limiters = {n: RateLimiter(c.rate) for n, c in config.channels.items()}
        self.tasks: list[asyncio.Task[None]] = []
        self.http: httpx.AsyncClient | None = None
        self.in_flight = 0

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the ledger's tables, start the channel workers, re-queue open messages."""
        await asyncio.to_thread(self.ledger.create_schema)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self.http = httpx.AsyncClient(limits=limits, trust_env=False)
        for name, cfg in self.config.channels.items():
            for i in range(cfg.workers):
                self.tasks.append(asyncio.create_task(self._worker(name), name=f"{name}-{i}"))
        await self.recover()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    async def run(self) -> None:
        """Dispatch forever (until cancelled)."""
        while True:
            try:
                await self.dispatch_once()
            except Exception:  # a database outage: keep the loop, the rows wait
                log.exception("dispatch failed; trying again")
            await asyncio.sleep(self.settings.dispatch_interval_s)

    async def recover(self) -> None:
        """Re-queue messages a stopped notifier left open.

        `planned` rows were never attempted: they are sent as usual. `sending` rows were being
        sent when the process stopped, so the receiver may or may not have them: the channel's
        `on_uncertain` rule decides (resend by default: the webhook's Idempotency-Key and
        Alertmanager's labels make a re-send a no-op there; robots and e-mail get the message
        again, marked as a possible duplicate; `skip` marks them `uncertain_skipped`).
        """
        opened: list[OpenMessage] = await asyncio.to_thread(self.ledger.open_messages)
        for m in opened:
            await self._queue_open(m)
        if opened:
            log.info("re-queued %d open messages", len(opened))

    async def _queue_open(self, m: OpenMessage) -> None:
        """Queue a message (or correction) the ledger has open."""
        if m.channel not in self.queues:
            await asyncio.to_thread(
                self.ledger.mark,
                m.message_id,
                FAILED,
                "channel no longer configured",
                correction=bool(m.retraction_id),
            )
            return
        self._enqueue(
            Job(
                m.message_id,
                m.channel,
                m.recipient,
                m.escalation_ids,
                m.roles,
                m.names,
                uncertain=m.status == SENDING,
                retraction_id=m.retraction_id,
            )
        )

    # -- input ----------------------------------------------------------------------------------
    async def ingest(self, values: Sequence[bytes | None], keys: Sequence[bytes | None]) -> int:
        """Keep a batch of raw escalation and retraction records in the ledger; returns how
        many were new."""
        good: list[dict[str, Any]] = []
        retractions: list[dict[str, Any]] = []
        for raw, key in zip(values, keys, strict=True):
            record, reason = decode_record(raw)
            if record is None:
                self.metrics.received.labels("dead_letter").inc()
                await self._dead_letter(
                    (key or b"").decode("utf-8", "replace"),
                    {
                        "record_type": "notify_dead_letter",
                        "reason": reason,
                        "value": (raw or b"").decode("utf-8", "replace")[:10_000],
                        "failed_at": self.clock().isoformat(),
                    },
                )
                continue
            if record["record_type"] == "retraction":
                if record.get("retracted_type", "escalation") != "escalation":
                    self.metrics.retractions.labels("ignored").inc()
                    continue
                retractions.append(record)
            else:
                good.append(record)
        new = 0
        if good:  # escalations first: a retraction in the same batch then finds its escalation
            new = await asyncio.to_thread(self.ledger.receive, good, self.clock())
            self.metrics.received.labels("new").inc(new)
            self.metrics.received.labels("duplicate").inc(len(good) - new)
        if retractions:
            fresh, unknown = await asyncio.to_thread(
                self.ledger.receive_retractions, retractions, self.clock()
            )
            self.metrics.retractions.labels("new").inc(fresh - unknown)
            self.metrics.retractions.labels("unknown").inc(unknown)
            self.metrics.retractions.labels("duplicate").inc(len(retractions) - fresh)
            if unknown:
                log.info("%d retractions of escalations not received; kept", unknown)
            new += fresh
        return new

    async def dispatch_once(self) -> int:
        """Settle new retractions, plan every account whose window has closed; returns how
        many messages (corrections included) were queued."""
        now = self.clock()
        queued = await self.settle_retractions(now)
        groups = await asyncio.to_thread(self.ledger.due, now, self.window_s)
        for group in groups:
            await self._record_unsent(group.retracted, group.quiet, now)
            records = group.live
            if not records:
                continue
            acked = await asyncio.to_thread(
                self.ledger.acknowledged, [str(r["sla_id"]) for r in records]
            )
            planned = plan(records, self.config, acked)
            ids = [str(r["escalation_id"]) for r in records]
            new = set(await asyncio.to_thread(self.ledger.commit_plan, ids, planned, now))
            for s in planned.skipped:
                self.metrics.notifications.labels(
                    s.channel, self.config.channels[s.channel].type, "skipped"
                ).inc()
            for eid in planned.unrouted:
                record = next(r for r in records if r["escalation_id"] == eid)
                await self._dead_letter(
                    str(record["account_id"]),
                    {
                        "record_type": "notify_dead_letter",
                        "reason": "no_recipient",
                        "escalation_id": eid,
                        "roles": record.get("roles"),
                        "failed_at": now.isoformat(),
                    },
                )
            for m in planned.messages:
                if m.message_id in new:
                    self._enqueue(
                        Job(
                            m.message_id,
                            m.channel,
                            m.recipient,
                            m.escalation_ids,
                            m.roles,
                            m.names,
                        )
                    )
                    queued += 1
        return queued

    async def settle_retractions(self, now: datetime) -> int:
        """Apply the retractions not yet settled; returns how many corrections were queued."""
        queued = 0
        for escalation_id in await asyncio.to_thread(self.ledger.unsettled):
            settled = await asyncio.to_thread(self.ledger.settle, escalation_id, now)
            for channel in settled.cancelled:
                self._count_cancelled(channel, 1)
            for m in settled.corrections:
                await self._queue_open(m)
                queued += m.channel in self.queues
        return queued

    async def _record_unsent(
        self,
        retracted: Sequence[tuple[dict[str, Any], str]],
        quiet: Sequence[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Record who would have got these escalations: retracted before they were planned,
        or quiet. Nothing is sent; nobody is dead-lettered for them."""
        for record, reason in retracted:
            planned = plan([record], self.config)
            await asyncio.to_thread(
                self.ledger.commit_plan,
                [str(record["escalation_id"])],
                planned,
                now,
                status=RETRACTED,
                reason=f"retracted: {reason}",
            )
            for m in planned.messages:
                self._count_cancelled(m.channel, 1)
        if quiet:
            acked = await asyncio.to_thread(
                self.ledger.acknowledged, [str(r["sla_id"]) for r in quiet]
            )
            planned = plan(quiet, self.config, acked)
            await asyncio.to_thread(
                self.ledger.commit_plan,
                [str(r["escalation_id"]) for r in quiet],
                planned,
                now,
                status=QUIET,
                reason=QUIET_REASON,
            )
            for m in planned.messages:
                self.metrics.notifications.labels(m.channel, self._type(m.channel), QUIET).inc()

    def _type(self, channel: str) -> str:
        cfg = self.config.channels.get(channel)
        return cfg.type if cfg is not None else "unknown"

    def _count_cancelled(self, channel: str, n: int) -> None:
        if n:
            self.metrics.cancelled.labels(channel, self._type(channel)).inc(n)

    def _enqueue(self, job: Job) -> None:
        self.in_flight += 1
        self.queues[job.channel].put_nowait(job)

    def idle(self) -> bool:
        """Nothing queued or being sent."""
        return self.in_flight == 0

    # -- acknowledgements -------------------------------------------------------------------------
    async def acknowledge(self, escalation_id: str, role: str, sig: str) -> tuple[int, str]:
        """(HTTP status, message) for an acknowledgement link."""
        if (
            not role
            or not sig
            or not verify_ack(self.settings.ack_secret, escalation_id, role, sig)
        ):
            return 403, "invalid signature"
        if await asyncio.to_thread(self.ledger.retracted, escalation_id):
            return 410, WITHDRAWN.get(self.lang, WITHDRAWN["zh"])
        sla_id = await asyncio.to_thread(self.ledger.acknowledge, escalation_id, role, self.clock())
        if sla_id is None:
            return 404, "unknown escalation"
        return 200, "acknowledged" if self.lang == "en" else "已确认"

    # -- sending --------------------------------------------------------------------------------
    async def _worker(self, channel: str) -> None:
        queue = self.queues[channel]
        while True:
            job = await queue.get()
            try:
                await self.limiters[channel].acquire()
                await self._deliver(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # the ledger keeps the row open; a restart picks it up
                log.exception("delivery of %s on %s failed unexpectedly", job.message_id, channel)
            finally:
                self.in_flight -= 1
                queue.task_done()

    def _render(self, job: Job, records: Mapping[str, dict[str, Any]], now: datetime) -> Rendered:
        s = self.settings
        items = [
            item_context(
                records[eid],
                job.roles.get(eid, ()),
                config=self.config,
                lang=self.lang,
                now=now,
                timeline_base=s.timeline_base_url,
                ack_base=s.ack_base_url,
                ack_secret=s.ack_secret,
            )
            for eid in job.escalation_ids
        ]
        robot_or_mail = self.config.channels[job.channel].type in ROBOTS_AND_MAIL
        return render(items, job.names, self.lang, resent=job.uncertain and robot_or_mail)

    def _render_correction(
        self, job: Job, retraction: Mapping[str, Any], record: Mapping[str, Any] | None
    ) -> Rendered:
        item = correction_context(
            retraction, record, lang=self.lang, timeline_base=self.settings.timeline_base_url
        )
        robot_or_mail = self.config.channels[job.channel].type in ROBOTS_AND_MAIL
        return render_correction(item, job.names, self.lang, resent=job.uncertain and robot_or_mail)

    def _counter(self, job: Job) -> Any:
        return self.metrics.corrections if job.retraction_id else self.metrics.notifications

    async def _deliver(self, job: Job) -> None:
        cfg = self.config.channels[job.channel]
        labels = (job.channel, cfg.type)
        correction = bool(job.retraction_id)
        if job.uncertain and cfg.uncertain_rule == "skip":
            await asyncio.to_thread(
                self.ledger.mark,
                job.message_id,
                UNCERTAIN_SKIPPED,
                "stopped between send and ledger write; on_uncertain=skip",
                correction=correction,
            )
            self._counter(job).labels(*labels, "uncertain_skipped").inc()
            return
        records = await asyncio.to_thread(self.ledger.records, job.escalation_ids)
        missing = [e for e in job.escalation_ids if e not in records]
        if missing:
            await self._fail(job, cfg, f"escalations missing from the inbox: {missing}", 0)
            return
        retraction: dict[str, Any] = {}
        if correction:
            found = await asyncio.to_thread(self.ledger.retraction_records, job.escalation_ids)
            if job.escalation_ids[0] not in found:
                await self._fail(job, cfg, "retraction missing from the ledger", 0)
                return
            retraction = found[job.escalation_ids[0]]
            await asyncio.to_thread(
                self.ledger.mark, job.message_id, SENDING, correction=True
            )  # the intent
        started = time.monotonic()
        attempts = 0
        timeout = cfg.timeout_s or self.settings.send_timeout_s
        current = job

        async def claim() -> Job:
            """The intent, minus escalations retracted by now (their rows are ended)."""
            keep, cancelled = await asyncio.to_thread(
                self.ledger.claim,
                job.message_id,
                current.escalation_ids,
                uncertain=job.uncertain and attempts == 1,
            )
            self._count_cancelled(job.channel, len(cancelled))
            if not keep:
                raise Withdrawn(job.message_id)
            return replace(current, escalation_ids=tuple(keep))

        def before_sleep(state: RetryCallState) -> None:
            self.metrics.retries.labels(*labels).inc()
            log.info("retrying %s on %s: %s", job.message_id, job.channel, state.outcome)

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.settings.retry_attempts),
                wait=wait_random_exponential(
                    multiplier=self.settings.retry_initial_s, max=self.settings.retry_max_s
                ),
                retry=retry_if_exception_type(Transient),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    if not correction:
                        current = await claim()
                    try:
                        if correction:
                            send = self._send_correction_once(current, cfg, retraction, records)
                        else:
                            send = self._send_once(current, cfg, records)
                        await asyncio.wait_for(send, timeout)
                    except TimeoutError as exc:
                        raise Transient(f"no answer within {timeout}s") from exc
        except Withdrawn:
            log.info("%s on %s: every escalation retracted; not sent", job.message_id, job.channel)
            return
        except Permanent as exc:
            await self._fail(current, cfg, str(exc), attempts)
            return
        except Transient as exc:
            await self._fail(current, cfg, f"retries exhausted: {exc}", attempts)
            return
        if self.settings.test_exit_after_send == job.channel:
            os._exit(137)  # test only: the process dies between the send and the ledger write
        await asyncio.to_thread(
            self.ledger.mark, job.message_id, SENT, "", attempts, correction=correction
        )
        self._counter(job).labels(*labels, "sent").inc()
        if not correction:
            self.metrics.latency.labels(*labels).observe(time.monotonic() - started)

    async def _fail(self, job: Job, cfg: ChannelConfig, reason: str, attempts: int) -> None:
        log.warning("notification %s on %s failed: %s", job.message_id, job.channel, reason)
        correction = bool(job.retraction_id)
        await asyncio.to_thread(
            self.ledger.mark, job.message_id, FAILED, reason, attempts, correction=correction
        )
        self._counter(job).labels(job.channel, cfg.type, "failed").inc()
        record: dict[str, Any] = {
            "record_type": "notify_dead_letter",
            "reason": reason,
            "message_id": job.message_id,
            "channel": job.channel,
            "channel_type": cfg.type,
            "recipient": job.recipient,
            "escalation_ids": list(job.escalation_ids),
            "attempts": attempts,
            "failed_at": self.clock().isoformat(),
        }
        if correction:
            record.update(kind="correction", retraction_id=job.retraction_id)
        await self._dead_letter(job.recipient if cfg.type == "email" else job.channel, record)

    async def _dead_letter(self, key: str, record: dict[str, Any]) -> None:
        reason = str(record["reason"]).split(":", 1)[0]
        self.metrics.dead_letters.labels(reason if len(reason) < 40 else "other").inc()
        await self.dead_letter(key, record)

    async def _send_once(
        self, job: Job, cfg: ChannelConfig, records: Mapping[str, dict[str, Any]]
    ) -> None:
        """One attempt (a fresh request each time: signatures carry the current time)."""
        now = self.clock()
        msg = self._render(job, records, now)
        ordered = [records[e] for e in job.escalation_ids]
        if cfg.type == "webhook":
            request = ch.webhook_request(
                cfg, msg, lang=self.lang, message_id=job.message_id, records=ordered, now=now
            )
        elif cfg.type == "alertmanager":
            urls = [self._timeline(r) for r in ordered]
            request = ch.alertmanager_request(
                cfg, msg, lang=self.lang, records=ordered, timeline_urls=urls
            )
        else:
            await self._send_text(job, cfg, msg, now)
            return
        assert self.http is not None, "start() first"
        await send_http(self.http, cfg.type, request)

    async def _send_correction_once(
        self,
        job: Job,
        cfg: ChannelConfig,
        retraction: Mapping[str, Any],
        records: Mapping[str, dict[str, Any]],
    ) -> None:
        """One attempt at a correction: the text on robots and e-mail, the retraction's
        fields to a webhook, the alert ended on Alertmanager."""
        now = self.clock()
        record = records[job.escalation_ids[0]]
        msg = self._render_correction(job, retraction, record)
        if cfg.type == "webhook":
            request = ch.correction_webhook_request(
                cfg, msg, lang=self.lang, message_id=job.message_id, retraction=retraction, now=now
            )
        elif cfg.type == "alertmanager":
            request = ch.alertmanager_resolve_request(
                cfg,
                msg,
                lang=self.lang,
                record=record,
                timeline_url=self._timeline(record),
                now=now,
            )
        else:
            await self._send_text(job, cfg, msg, now, colour="blue")
            return
        assert self.http is not None, "start() first"
        await send_http(self.http, cfg.type, request)

    def _timeline(self, record: Mapping[str, Any]) -> str:
        return f"{self.settings.timeline_base_url.rstrip('/')}/{record['request_id']}"

    async def _send_text(
        self, job: Job, cfg: ChannelConfig, msg: Rendered, now: datetime, colour: str = "red"
    ) -> None:
        """A message for people: a group robot's post or an e-mail."""
        if cfg.type == "email":
            mail = ch.email_message(cfg, msg, to=job.recipient, message_id=job.message_id, now=now)
            await send_email(cfg, mail)
            return
        if cfg.type == "wecom":
            request = ch.wecom_request(cfg, msg, self.lang)
        elif cfg.type == "dingtalk":
            request = ch.dingtalk_request(cfg, msg, self.lang, now)
        else:
            request = ch.feishu_request(cfg, msg, self.lang, now, colour=colour)
        assert self.http is not None, "start() first"
        await send_http(self.http, cfg.type, request)


async def send_http(client: httpx.AsyncClient, channel_type: str, request: ch.HttpRequest) -> None:
    """Send; raise `Transient` or `Permanent` unless the receiver accepted it."""
    try:
        response = await client.request(
            request.method, request.url, headers=dict(request.headers), content=request.body
        )
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise Transient(f"{type(exc).__name__}: {exc}") from exc
    outcome, reason = ch.classify(channel_type, response.status_code, response.content)
    if outcome == "transient":
        raise Transient(reason)
    if outcome == "permanent":
        raise Permanent(reason)


async def send_email(cfg: ChannelConfig, mail: Any) -> None:
    """Send over SMTP (STARTTLS and auth when configured)."""
    try:
        await aiosmtplib.send(
            mail,
            hostname=cfg.host,
            port=cfg.port,
            start_tls=cfg.starttls,
            use_tls=False,
            username=cfg.username,
            password=cfg.password,
            timeout=cfg.timeout_s or 10.0,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        if all(400 <= c < 500 for c in codes):
            raise Transient(f"smtp recipients deferred: {codes}") from exc
        raise Permanent(f"smtp recipients refused: {codes}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 400 <= exc.code < 500:
            raise Transient(f"smtp {exc.code}: {exc.message}") from exc
        raise Permanent(f"smtp {exc.code}: {exc.message}") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise Transient(f"{type(exc).__name__}: {exc}") from exc


__all__ = [
    "PLANNED",
    "Job",
    "Notifier",
    "Permanent",
    "RateLimiter",
    "Transient",
    "Withdrawn",
    "decode_record",
]
