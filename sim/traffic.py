"""Deterministic simulated key-account traffic: the CONTRACT.md input events as JSON-able dicts.

A `Simulator` owns one seeded `random.Random`, so the same seed and the same calls give the same
events, byte for byte. Every request's whole lifecycle is planned when it is created (some met on
time, some late, a few cancelled, some paused on the customer); its events are then released as
simulated time passes. Nothing here does I/O: `greenlane.sim.publisher` sends the events.

Times are RFC 3339 strings in Asia/Shanghai (+08:00), whole seconds, so that an event's text and
the window it was released in always agree.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any, Final, Literal

import orjson

SimEvent = dict[str, Any]
"""One input event as a JSON-able dict (the contract envelope)."""

SHANGHAI: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
"""China has no daylight saving time, so a fixed +08:00 offset is exact and needs no tz data."""

MINUTE: Final = 60.0
HOUR: Final = 3600.0
DAY: Final = 86400.0

# POLICY-REFERENCE.md proposed targets: fault respond / on-site / restore, in minutes.
RESPOND_MIN: Final = {
    "important": 15,
    "strategic": 15,
    "economic": 30,
    "group": 30,
    "standard": 60,
}
ON_SITE_MIN: Final = {
    "important": 60,
    "strategic": 60,
    "economic": 120,
    "group": 120,
    "standard": 240,
}
RESTORE_MIN: Final = {
    "important": 180,
    "strategic": 240,
    "economic": 240,
    "group": 360,
    "standard": 480,
}
# Leased-line delivery, same city, in working days; the simulator plans in calendar time, so it
# stretches working days by 7/5 to stay roughly in step with a working-day calendar.
DELIVERY_WD: Final = {"important": 5, "strategic": 5, "economic": 7, "group": 10, "standard": 15}
WORKING_TO_CALENDAR: Final = 7 / 5

STAGE_DEPARTMENT: Final = {
    "survey": "network-ops",
    "resource_check": "resource-mgmt",
    "design": "planning",
    "construction": "construction",
    "configuration": "network-ops",
    "testing": "network-ops",
    "handover": "account-team",
}
ALL_STAGES: Final = tuple(STAGE_DEPARTMENT)
# Relative effort of each stage; construction (civil works, fibre) dominates a new line.
STAGE_WEIGHT: Final = {
    "survey": 0.14,
    "resource_check": 0.09,
    "design": 0.13,
    "construction": 0.36,
    "configuration": 0.1,
    "testing": 0.1,
    "handover": 0.08,
}
SERVICE_STAGES: Final[dict[str, tuple[str, ...]]] = {
    "dedicated_line.new": ALL_STAGES,
    "dedicated_line.relocation": ALL_STAGES,
    "internet.new": ALL_STAGES,
    "dedicated_line.bandwidth_change": ("resource_check", "configuration", "testing", "handover"),
    "mobile.group_add": ("configuration", "handover"),
}
SERVICES: Final = tuple(SERVICE_STAGES)
SERVICE_WEIGHTS: Final = (0.34, 0.1, 0.15, 0.24, 0.17)

PENDING_REASONS: Final = (
    "customer_site_not_ready",
    "customer_power_not_ready",
    "no_site_access",
    "customer_deferred",
    "third_party_permit",
)
HELD_REASONS: Final = ("no_resources", "needs_construction")

Tier = Literal["important", "strategic", "economic", "group", "standard"]

CITIES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    # region name: (id code, districts or towns)
    "深圳": ("SZ", ("福田", "南山", "罗湖", "宝安", "龙岗", "龙华")),
    "广州": ("GZ", ("天河", "越秀", "海珠", "白云", "番禺", "黄埔")),
    "东莞": ("DG", ("南城", "东城", "长安", "虎门", "松山湖", "塘厦")),
    "佛山": ("FS", ("禅城", "南海", "顺德", "三水")),
    "珠海": ("ZH", ("香洲", "金湾", "斗门")),
    "惠州": ("HZ", ("惠城", "惠阳", "博罗")),
    "中山": ("ZS", ("石岐", "火炬", "小榄")),
}
ROADS: Final = (
    "深南大道",
    "人民路",
    "建设路",
    "中山路",
    "科技园路",
    "解放路",
    "滨河路",
    "工业大道",
)
SURNAMES: Final = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁"
GIVEN: Final = (
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "磊",
    "洋",
    "勇",
    "艳",
    "杰",
    "军",
    "涛",
    "明",
    "超",
    "秀英",
    "志强",
    "海燕",
    "建华",
    "晓东",
    "丽娟",
    "俊杰",
    "嘉怡",
    "子轩",
    "文博",
)
BRANDS: Final = (
    "恒信",
    "鹏程",
    "嘉禾",
    "瑞达",
    "新域",
    "华锐",
    "泰和",
    "启明",
    "远航",
    "正通",
    "汇智",
    "长盈",
)

# Industries whose accounts are "important" (重要客户: party/government, public security, courts,
# education, health, news, finance) versus commercial ones graded by spend and strategy.
INDUSTRY_PREFIX: Final = {
    "政府机关": "GOV",
    "公共安全": "GOV",
    "司法": "GOV",
    "医疗卫生": "HEA",
    "教育": "EDU",
    "金融": "FIN",
    "新闻媒体": "MED",
    "社会服务": "ORG",
    "制造业": "ENT",
    "信息技术": "ENT",
    "物流": "ENT",
    "零售": "ENT",
}
IMPORTANT_INDUSTRIES: Final = (
    "政府机关",
    "公共安全",
    "司法",
    "医疗卫生",
    "教育",
    "金融",
    "新闻媒体",
)
COMMERCIAL_INDUSTRIES: Final = ("制造业", "信息技术", "物流", "零售")


def iso(t: datetime) -> str:
    """Format an instant as RFC 3339 in Asia/Shanghai, whole seconds: `...T10:15:00+08:00`."""
    return t.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _ceil_second(t: datetime) -> datetime:
    # Whole seconds, rounded up, so an event planned inside a window never prints before it.
    whole = t.replace(microsecond=0)
    return whole + timedelta(seconds=1) if t.microsecond else whole


@dataclass(slots=True)
class Account:
    """A simulated key account and the things its requests refer to."""

    account_id: str
    name: str
    tier: Tier
    region: str
    industry: str
    parent_id: str | None = None
    billing_parent_id: str | None = None
    circuits: list[str] = field(default_factory=list)


@dataclass(order=True, slots=True)
class _Pending:
    at: datetime
    seq: int
    event: SimEvent = field(compare=False)


class _Lifecycle:
    """The planned events of one request, kept strictly increasing in time (created first)."""

    def __init__(self, account: Account, request_id: str) -> None:
        self.account = account
        self.request_id = request_id
        self.steps: list[tuple[datetime, str, str, dict[str, Any]]] = []

    def add(self, at: datetime, event_type: str, source: str, data: dict[str, Any]) -> datetime:
        """Append an event no earlier than one second after the previous; return its time."""
        at = _ceil_second(at)
        if self.steps and at <= self.steps[-1][0]:
            at = self.steps[-1][0] + timedelta(seconds=1)
        self.steps.append((at, event_type, source, data))
        return at


@dataclass(frozen=True, slots=True)
class _StagePlan:
    stage: str
    gap_s: float  # the hand-off: from the previous step to this stage starting
    duration_s: float | None  # None: started and still open, nothing after it is planned


@dataclass(frozen=True, slots=True)
class _Interrupt:
    """A pause (pending) or hold in one stage: `after_s` into the stage, lasting `duration_s`."""

    stage_index: int
    after_s: float
    duration_s: float
    reason: str


class Simulator:
    """Seeded generator of accounts, a backlog of past requests and live traffic.

    :param seed: the seed of the one `random.Random` every choice comes from.
    :param now: the instant the backlog leads up to and live traffic starts from; must be aware.
        Defaults to the current time.
    :param accounts: how many key accounts to simulate (at least the fixed scenario accounts).
    :param requests_per_minute: mean arrival rate of new requests in `advance`, in simulated time.
    :param lifecycle_scale: multiplies the durations of live requests' lifecycles (1.0 is
        realistic; a demo may compress them, e.g. 0.01, to see orders complete in minutes).
    """

    def __init__(
        self,
        seed: int = 7,
        now: datetime | None = None,
        accounts: int = 40,
        *,
        requests_per_minute: float = 30.0,
        lifecycle_scale: float = 1.0,
    ) -> None:
        if now is None:
            now = datetime.now(SHANGHAI)
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware (e.g. datetime.now(SHANGHAI))")
        if requests_per_minute < 0:
            raise ValueError("requests_per_minute must be >= 0")
        if lifecycle_scale <= 0:
            raise ValueError("lifecycle_scale must be > 0")
        self.seed = seed
        # Truncated to whole seconds: every backlog event (whole seconds) is then <= caller's now.
        self.now = now.astimezone(SHANGHAI).replace(microsecond=0)
        self.requests_per_minute = requests_per_minute
        self.lifecycle_scale = lifecycle_scale
        # Reproducible simulation, not security: a seeded PRNG is exactly what is wanted.
        self._rng = random.Random(seed)  # noqa: S311
        self._tag = hashlib.blake2b(f"greenlane-sim:{seed}".encode(), digest_size=3).hexdigest()
        self._event_seq = 0
        # Ordinary request numbers start above the seeds' case's fixed ORD-YYYY-000123.
        self._order_seq = 1000
        self._ticket_seq = 1000
        self._malformed_seq = 0
        self._queue: list[_Pending] = []
        self._clock = self.now
        self._next_arrival = self._draw_arrival(self.now)

        self._accounts = self._make_accounts(accounts)
        self._by_id = {a.account_id: a for a in self._accounts}
        self._account_events = [self._account_event(a) for a in self._accounts]
        # Planned now, in a fixed order, so output never depends on which method is called first.
        self._plan_backlog()
        self._backlog = self._release(self.now)

    # ----------------------------------------------------------------- public API

    def accounts(self) -> list[SimEvent]:
        """The `account.upserted` events of every simulated account (all dated before `now`)."""
        return [dict(e) for e in self._account_events]

    def account_ids(self) -> list[str]:
        """The ids of the simulated accounts, in generation order."""
        return [a.account_id for a in self._accounts]

    def backlog(self) -> list[SimEvent]:
        """Events of requests that began before `now`, up to `now`, sorted by event time.

        Includes the seeds' case (an important social-service organisation's two leased lines,
        ordered two weeks ago, survey still open), an important fault ticket 20 minutes old with
        no response, tickets hours old not yet restored, orders stuck in construction, requests
        paused on the customer, and finished ones. Their later events come out of `advance`.
        """
        return list(self._backlog)

    def advance(self, until: datetime) -> list[SimEvent]:
        """Live traffic with event time in (previous point, `until`], sorted by event time.

        New requests arrive as a Poisson process at `requests_per_minute`; each is planned whole
        on arrival, and the due events of every open request are released. The first call starts
        from `now`. A `until` at or before the previous point returns nothing.
        """
        if until.tzinfo is None or until.utcoffset() is None:
            raise ValueError("until must be timezone-aware")
        if until <= self._clock:
            return []
        while self._next_arrival <= until:
            self._plan_random_request(self._next_arrival, self.lifecycle_scale)
            self._next_arrival = self._draw_arrival(self._next_arrival)
        self._clock = until
        return self._release(until)

    def malformed(self, n: int) -> list[bytes]:
        """`n` payloads that `decode_event` must reject, for the dead-letter path.

        Cycles through bad JSON, an unknown event type, a missing required field and a naive
        (offset-less) time. Drawn without the main random stream, so asking for them does not
        change the rest of the traffic.
        """
        out: list[bytes] = []
        for _ in range(n):
            k = self._malformed_seq
            self._malformed_seq += 1
            account = self._accounts[k % len(self._accounts)]
            base: SimEvent = {
                "event_id": f"bad-{self._tag}-{k:06d}",
                "event_type": "ticket.created",
                "event_time": iso(self._clock),
                "account_id": account.account_id,
                "request_id": f"TKT-BAD-{k:06d}",
                "source": "ticketing",
                "data": {"category": "fault", "severity": 2, "service": "dedicated_line"},
            }
            kind = k % 4
            if kind == 0:  # truncated JSON, as from a producer that died mid-write
                out.append(orjson.dumps(base)[:-7])
                continue
            if kind == 1:
                base["event_type"] = "ticket.teleported"
            elif kind == 2:
                del base["event_time"]
            else:
                base["event_time"] = self._clock.replace(tzinfo=None).isoformat(timespec="seconds")
            out.append(orjson.dumps(base))
        return out

    # ----------------------------------------------------------------- accounts

    def _person(self) -> str:
        return self._rng.choice(SURNAMES) + self._rng.choice(GIVEN)

    def _phone(self) -> str:
        digits = "".join(self._rng.choice("0123456789") for _ in range(9))
        return "1" + self._rng.choice("3589") + digits

    def _make_accounts(self, n: int) -> list[Account]:
        fixed = [
            # The seeds' case: a government-affiliated social-service organisation.
            Account("ORG-GD-0007", "广东省社会福利服务中心", "important", "广州", "社会服务"),
            Account("GOV-SZ-0042", "深圳市公安局福田分局", "important", "深圳", "公共安全"),
            Account("FIN-GZ-0003", "某商业银行广州分行", "important", "广州", "金融"),
            Account("HEA-GZ-0012", "广州市第一人民医院", "important", "广州", "医疗卫生"),
            # A branch campus whose bills the hospital pays: it inherits the hospital's tier.
            Account(
                "HEA-GZ-0013",
                "广州市第一人民医院南沙院区",
                "standard",
                "广州",
                "医疗卫生",
                billing_parent_id="HEA-GZ-0012",
            ),
            Account(
                "ENT-SZ-0020", "深圳市启明信息技术股份有限公司", "strategic", "深圳", "信息技术"
            ),
            Account("ENT-FS-0031", "佛山市泰和陶瓷制造有限公司", "economic", "佛山", "制造业"),
            # A group customer: the head office and branches carry the group tier.
            Account("ENT-GZ-0100", "广东远航物流集团有限公司", "group", "广州", "物流"),
            Account(
                "ENT-SZ-0101",
                "广东远航物流集团有限公司深圳分公司",
                "group",
                "深圳",
                "物流",
                parent_id="ENT-GZ-0100",
            ),
            Account(
                "ENT-DG-0102",
                "广东远航物流集团有限公司东莞分公司",
                "group",
                "东莞",
                "物流",
                parent_id="ENT-GZ-0100",
            ),
            Account("ENT-DG-0250", "东莞市正通电子厂", "standard", "东莞", "制造业"),
        ]
        if n < len(fixed):
            raise ValueError(f"accounts must be at least {len(fixed)} (the scenario accounts)")
        used_ids = {a.account_id for a in fixed}
        used_names = {a.name for a in fixed}
        out = list(fixed)
        groups = [a for a in fixed if a.tier == "group" and a.parent_id is None]
        while len(out) < n:
            account = self._random_account(used_ids, used_names, groups)
            out.append(account)
            if account.tier == "group" and account.parent_id is None:
                groups.append(account)
        for account in out:
            code = CITIES[account.region][0]
            for _ in range(self._rng.randint(1, 4)):
                bandwidth = self._rng.choice(("100M", "200M", "1G", "10G"))
                kind = self._rng.choice(("DL", "MSTP", "INT"))
                number = self._rng.randint(1, 999999)
                account.circuits.append(f"{code}-{kind}-{bandwidth}-{number:06d}")
        return out

    def _random_account(
        self, used_ids: set[str], used_names: set[str], groups: list[Account]
    ) -> Account:
        rng = self._rng
        region = rng.choice(tuple(CITIES))
        code, districts = CITIES[region]
        district = rng.choice(districts)
        # Some new accounts are branches of an existing group (key accounts whatever their spend).
        if groups and rng.random() < 0.1:
            head = rng.choice(groups)
            industry = head.industry
            name = f"{head.name}{region}{district}分公司"
            tier: Tier = "group"
            parent: str | None = head.account_id
        else:
            parent = None
            roll = rng.random()
            if roll < 0.4:
                industry = rng.choice(IMPORTANT_INDUSTRIES)
                tier = "important"
            else:
                industry = rng.choice(COMMERCIAL_INDUSTRIES)
                tier = rng.choices(("strategic", "economic", "group", "standard"), (2, 3, 1, 2))[0]
            name = self._account_name(industry, region, district, tier)
        prefix = INDUSTRY_PREFIX[industry]
        while True:
            account_id = f"{prefix}-{code}-{rng.randint(1, 9999):04d}"
            if account_id not in used_ids:
                break
        suffix = 2
        base_name = name
        while name in used_names:  # two draws can coincide; a real CRM would not have twins
            name = f"{base_name}（{suffix}）"
            suffix += 1
        used_ids.add(account_id)
        used_names.add(name)
        return Account(account_id, name, tier, region, industry, parent_id=parent)

    def _account_name(self, industry: str, region: str, district: str, tier: Tier) -> str:
        rng = self._rng
        n = rng.randint(1, 12)
        brand = rng.choice(BRANDS)
        templates: dict[str, tuple[str, ...]] = {
            "政府机关": (
                f"{region}市{district}区人民政府",
                f"{region}市税务局{district}分局",
                f"{region}市政务服务数据管理局",
            ),
            "公共安全": (f"{region}市公安局{district}分局", f"{region}市应急管理局"),
            "司法": (f"{region}市中级人民法院", f"{region}市{district}区人民检察院"),
            "医疗卫生": (f"{region}市第{n}人民医院", f"{region}市中医院", f"{region}市妇幼保健院"),
            "教育": (
                f"{region}市第{n}中学",
                f"{region}职业技术学院",
                f"{region}市{district}区实验小学",
            ),
            "金融": (
                f"某商业银行{region}{district}支行",
                f"{region}农村商业银行{district}支行",
                f"某证券{region}{district}营业部",
                f"某财产保险{region}中心支公司",
            ),
            "新闻媒体": (f"{region}广播电视台", f"{region}日报社"),
        }
        if industry in templates:
            return rng.choice(templates[industry])
        kind = {
            "制造业": "制造有限公司",
            "信息技术": "科技股份有限公司",
            "物流": "物流有限公司",
            "零售": "商贸有限公司",
        }[industry]
        if tier == "group":
            return f"广东{brand}{kind[:-4]}集团有限公司"
        return f"{region}市{brand}{kind}"

    def _account_event(self, account: Account) -> SimEvent:
        rng = self._rng
        code = CITIES[account.region][0]
        data: dict[str, Any] = {
            "name": account.name,
            "tier": account.tier,
            "account_manager": {"name": self._person(), "contact": self._phone()},
            "region": account.region,
            "industry": account.industry,
            # The escalation ladder's roles (POLICY-REFERENCE.md): who to tell at each rung.
            "contacts": {
                "team_lead": [{"name": self._person(), "contact": self._phone()}],
                "department_manager": [{"name": self._person(), "contact": self._phone()}],
                "customer_response_centre": [
                    {"name": f"{account.region}政企客户响应中心", "contact": f"400-{code}-10000"}
                ],
                "executive_in_charge": [{"name": self._person(), "contact": self._phone()}],
                "company_leadership": [
                    {"name": "省公司政企事业部", "contact": "gd-zq@example.com"}
                ],
            },
        }
        if account.tier == "important":
            # Important accounts name a second manager so a notification never dead-ends.
            data["contacts"]["department_manager"].append(
                {"name": self._person(), "contact": self._phone()}
            )
        if account.parent_id is not None:
            data["parent_id"] = account.parent_id
        if account.billing_parent_id is not None:
            data["billing_parent_id"] = account.billing_parent_id
        at = _ceil_second(self.now - timedelta(days=rng.uniform(30, 400)))
        return self._envelope("account.upserted", at, "crm", account.account_id, None, data)

    # ----------------------------------------------------------------- events and release

    def _envelope(
        self,
        event_type: str,
        at: datetime,
        source: str,
        account_id: str,
        request_id: str | None,
        data: dict[str, Any],
    ) -> SimEvent:
        self._event_seq += 1
        event: SimEvent = {
            # Seed tag plus a counter: unique within a run, different across seeds, reproducible.
            "event_id": f"{source}-{self._tag}-{self._event_seq:07d}",
            "event_type": event_type,
            "event_time": iso(at),
            "account_id": account_id,
        }
        if request_id is not None:
            event["request_id"] = request_id
        event["source"] = source
        event["data"] = data
        return event

    def _commit(self, life: _Lifecycle) -> None:
        for at, event_type, source, data in life.steps:
            event = self._envelope(
                event_type, at, source, life.account.account_id, life.request_id, data
            )
            heapq.heappush(self._queue, _Pending(at, self._event_seq, event))

    def _release(self, until: datetime) -> list[SimEvent]:
        out: list[SimEvent] = []
        while self._queue and self._queue[0].at <= until:
            out.append(heapq.heappop(self._queue).event)
        return out

    def _draw_arrival(self, after: datetime) -> datetime:
        if self.requests_per_minute == 0:
            return datetime.max.replace(tzinfo=SHANGHAI)
        gap = self._rng.expovariate(self.requests_per_minute / MINUTE)
        return after + timedelta(seconds=gap)

    def _order_id(self, at: datetime) -> str:
        self._order_seq += 1
        return f"ORD-{at.astimezone(SHANGHAI).year}-{self._order_seq:06d}"

    def _ticket_id(self, at: datetime) -> str:
        self._ticket_seq += 1
        return f"TKT-{at.astimezone(SHANGHAI).year}-{self._ticket_seq:06d}"

    def _site(self, account: Account) -> str:
        rng = self._rng
        district = rng.choice(CITIES[account.region][1])
        floor = rng.randint(1, 28)
        return (
            f"{account.region}市{district}{rng.choice(ROADS)}{rng.randint(1, 3999)}号 {floor}楼机房"
        )

    # ----------------------------------------------------------------- tickets

    def _plan_ticket(
        self,
        account: Account,
        t0: datetime,
        *,
        category: str = "fault",
        severity: int = 2,
        respond_s: float | None,
        on_site_s: float | None = None,
        restore_s: float | None = None,
        pending: tuple[float, float, str] | None = None,
        cancel_after_s: float | None = None,
        reopen: bool = False,
        close_after_s: float = 4 * HOUR,
        scale: float = 1.0,
    ) -> None:
        """Plan a ticket. Offsets are from creation; a None milestone ends the plan there
        (the ticket stays open). `pending` is (seconds after on-site, duration, reason)."""
        rng = self._rng
        life = _Lifecycle(account, self._ticket_id(t0))
        data: dict[str, Any] = {
            "category": category,
            "severity": severity,
            "service": rng.choice(("dedicated_line", "dedicated_line", "internet", "mobile")),
            "region": account.region,
        }
        if category == "fault" and account.circuits:
            data["circuit_id"] = rng.choice(account.circuits)
        life.add(t0, "ticket.created", "ticketing", data)
        self._ticket_lifecycle(
            life,
            t0,
            category,
            respond_s,
            on_site_s,
            restore_s,
            pending,
            cancel_after_s,
            reopen,
            close_after_s,
            scale,
        )
        self._commit(life)

    def _ticket_lifecycle(
        self,
        life: _Lifecycle,
        t0: datetime,
        category: str,
        respond_s: float | None,
        on_site_s: float | None,
        restore_s: float | None,
        pending: tuple[float, float, str] | None,
        cancel_after_s: float | None,
        reopen: bool,
        close_after_s: float,
        scale: float,
    ) -> None:
        rng = self._rng

        def at(offset_s: float) -> datetime:
            return t0 + timedelta(seconds=offset_s)

        def state(when: datetime, name: str, reason: str | None = None) -> datetime:
            payload: dict[str, Any] = {"state": name}
            if reason is not None:
                payload["reason"] = reason
            return life.add(when, "ticket.state_changed", "ticketing", payload)

        def milestone(when: datetime, name: str) -> datetime:
            return life.add(when, "ticket.milestone", "ticketing", {"name": name})

        if respond_s is None:
            return
        # The desk acknowledges (dispatches) and makes first contact within moments of each other.
        state(at(respond_s - rng.uniform(0, 60) * scale), "acknowledged")
        t = milestone(at(respond_s), "responded")
        if cancel_after_s is not None:
            state(
                at(max(cancel_after_s, respond_s + 60)),
                "cancelled",
                rng.choice(("duplicate_report", "customer_self_resolved")),
            )
            return
        t = state(t + timedelta(seconds=rng.uniform(60, 300) * scale), "inProgress")
        paused_s = 0.0
        if category == "fault":
            if on_site_s is None:
                return
            t = milestone(at(on_site_s), "on_site")
            if pending is not None:
                after_s, duration_s, reason = pending
                t = state(t + timedelta(seconds=after_s), "pending", reason)
                t = state(t + timedelta(seconds=duration_s), "inProgress")
                paused_s = duration_s
            if restore_s is None:
                return
            t = milestone(max(at(restore_s + paused_s), t), "restored")
        elif restore_s is None:
            return
        resolved_at = max(at(restore_s + paused_s), t)
        t = state(resolved_at + timedelta(seconds=rng.uniform(120, 900) * scale), "resolved")
        if reopen:
            # The customer reports the fault again before confirming: a reopen, per the contract.
            t = state(
                t + timedelta(seconds=rng.uniform(1, 6) * HOUR * scale),
                "inProgress",
                "fault_recurred",
            )
            t = milestone(t + timedelta(seconds=rng.uniform(0.5, 2) * HOUR * scale), "restored")
            t = state(t + timedelta(seconds=rng.uniform(120, 600) * scale), "resolved")
        state(t + timedelta(seconds=close_after_s), "closed")

    def _random_ticket(self, account: Account, t0: datetime, scale: float) -> None:
        rng = self._rng
        tier = account.tier
        category = rng.choices(("fault", "complaint", "inquiry", "change"), (85, 8, 5, 2))[0]
        weights = (30, 40, 20, 10) if tier == "important" else (8, 30, 40, 22)
        severity = rng.choices((1, 2, 3, 4), weights)[0]
        outcome = rng.choices(("met", "late", "cancelled"), (72, 22, 6))[0]
        targets = [m[tier] * MINUTE for m in (RESPOND_MIN, ON_SITE_MIN, RESTORE_MIN)]
        factors = [rng.uniform(0.2, 0.9) for _ in targets]
        if outcome == "late":
            late = [rng.random() < 0.5 for _ in targets]
            if not any(late):
                late[2] = True
            factors = [
                rng.uniform(1.05, 1.9) if slip else f for slip, f in zip(late, factors, strict=True)
            ]
        respond_s, on_site_s, restore_s = (
            f * t * scale for f, t in zip(factors, targets, strict=True)
        )
        # Milestones happen in order whatever each one's own target was.
        on_site_s = max(on_site_s, respond_s + 2 * MINUTE * scale)
        restore_s = max(restore_s, on_site_s + 10 * MINUTE * scale)
        pending = None
        if category == "fault" and outcome != "cancelled" and rng.random() < 0.12:
            pending = (
                rng.uniform(5, 20) * MINUTE * scale,
                rng.uniform(15, 90) * MINUTE * scale,
                rng.choice(("no_site_access", "customer_power_not_ready", "customer_deferred")),
            )
        self._plan_ticket(
            account,
            t0,
            category=category,
            severity=severity,
            respond_s=respond_s,
            on_site_s=on_site_s,
            restore_s=restore_s,
            pending=pending,
            cancel_after_s=respond_s + rng.uniform(5, 30) * MINUTE * scale
            if outcome == "cancelled"
            else None,
            reopen=category == "fault" and outcome != "cancelled" and rng.random() < 0.03,
            close_after_s=rng.uniform(1, 24) * HOUR * scale,
            scale=scale,
        )

    # ----------------------------------------------------------------- orders

    def _plan_order(
        self,
        account: Account,
        t0: datetime,
        *,
        service: str,
        stages: Sequence[_StagePlan],
        ack_s: float,
        quantity: int = 1,
        priority: str = "normal",
        promised_at: datetime | None = None,
        request_id: str | None = None,
        pending: _Interrupt | None = None,
        held: _Interrupt | None = None,
        cancel_in_stage: int | None = None,
        complete_after_s: float = 30 * MINUTE,
    ) -> None:
        """Plan an order and its provisioning stages. `cancel_in_stage` -1 cancels before any
        stage starts; a stage with no duration is left open and ends the plan."""
        rng = self._rng
        life = _Lifecycle(account, request_id or self._order_id(t0))
        data: dict[str, Any] = {
            "service": service,
            "priority": priority,
            "quantity": quantity,
            "site": self._site(account),
            "region": account.region,
        }
        if promised_at is not None:
            data["promised_at"] = iso(promised_at)
        life.add(t0, "order.created", "crm", data)

        def order_state(when: datetime, name: str, reason: str | None = None) -> datetime:
            payload: dict[str, Any] = {"state": name}
            if reason is not None:
                payload["reason"] = reason
            return life.add(when, "order.state_changed", "crm", payload)

        def stage_event(when: datetime, stage: str, status: str, who: str | None) -> datetime:
            payload: dict[str, Any] = {
                "stage": stage,
                "status": status,
                "department": STAGE_DEPARTMENT[stage],
            }
            if who is not None:
                payload["assignee"] = who
            return life.add(when, "provisioning.stage_changed", "oss", payload)

        t = order_state(t0 + timedelta(seconds=ack_s), "acknowledged")
        if cancel_in_stage == -1:
            order_state(
                t + timedelta(seconds=rng.uniform(1, 48) * HOUR), "cancelled", "customer_withdrew"
            )
            self._commit(life)
            return
        for index, plan in enumerate(stages):
            who = self._person()
            start = stage_event(t + timedelta(seconds=plan.gap_s), plan.stage, "started", who)
            t = start
            if index == 0:
                t = order_state(t + timedelta(seconds=rng.uniform(60, 600)), "inProgress")
            extra_s = 0.0
            if held is not None and held.stage_index == index:
                t = order_state(start + timedelta(seconds=held.after_s), "held", held.reason)
                t = order_state(t + timedelta(seconds=held.duration_s), "inProgress")
                extra_s += held.after_s + held.duration_s
            if pending is not None and pending.stage_index == index:
                t = order_state(t + timedelta(seconds=pending.after_s), "pending", pending.reason)
                stage_event(t, plan.stage, "blocked", who)
                t = stage_event(
                    t + timedelta(seconds=pending.duration_s), plan.stage, "unblocked", who
                )
                t = order_state(t, "inProgress")
                extra_s += pending.after_s + pending.duration_s
            if plan.duration_s is None:
                break
            if cancel_in_stage == index:
                order_state(
                    max(t, start + timedelta(seconds=plan.duration_s * 0.5)),
                    "cancelled",
                    rng.choice(("customer_withdrew", "customer_changed_requirement")),
                )
                break
            end = start + timedelta(seconds=max(plan.duration_s, extra_s + 60))
            t = stage_event(max(end, t), plan.stage, "completed", who)
        else:
            order_state(t + timedelta(seconds=complete_after_s), "completed")
        self._commit(life)

    def _delivery_s(self, account: Account, service: str) -> float:
        days = DELIVERY_WD[account.tier] * WORKING_TO_CALENDAR
        if service == "dedicated_line.bandwidth_change":
            days *= 0.4  # a change on an existing circuit: no survey, no civil works
        elif service == "mobile.group_add":
            days = 2.0
        return days * DAY

    def _spread(self, stages: Sequence[str], total_s: float, slip: bool) -> list[_StagePlan]:
        """Share `total_s` among stages and the hand-offs before them; with `slip`, one stage or
        hand-off takes a far larger share, as the seeds' 'hand-offs matter more' describes."""
        rng = self._rng
        stage_w = [STAGE_WEIGHT[s] * rng.uniform(0.7, 1.3) for s in stages]
        gap_w = [0.12 / len(stages) * rng.uniform(0.2, 1.8) for _ in stages]
        if slip:
            culprit = rng.randrange(2 * len(stages))
            if culprit < len(stages):
                stage_w[culprit] *= 4
            else:
                gap_w[culprit - len(stages)] *= 12
        norm = total_s / (sum(stage_w) + sum(gap_w))
        return [
            _StagePlan(s, g * norm, w * norm)
            for s, g, w in zip(stages, gap_w, stage_w, strict=True)
        ]

    def _priority(self, account: Account) -> str:
        if account.tier == "important":
            return self._rng.choices(("urgent", "high", "normal"), (3, 5, 2))[0]
        return self._rng.choices(("high", "normal"), (3, 7))[0]

    def _quantity(self, service: str) -> int:
        if service == "dedicated_line.new":
            return self._rng.choices((1, 2, 3), (6, 3, 1))[0]
        if service == "mobile.group_add":
            return self._rng.randint(5, 200)
        return 1

    def _random_order(self, account: Account, t0: datetime, scale: float) -> None:
        rng = self._rng
        service = rng.choices(SERVICES, SERVICE_WEIGHTS)[0]
        stage_names = SERVICE_STAGES[service]
        target_s = self._delivery_s(account, service)
        outcome = rng.choices(("met", "late", "cancelled"), (70, 22, 8))[0]
        factor = rng.uniform(1.1, 2.0) if outcome == "late" else rng.uniform(0.45, 0.9)
        ack_s = rng.uniform(10 * MINUTE, 4 * HOUR) * scale
        stages = self._spread(stage_names, target_s * factor * scale - ack_s, outcome == "late")
        pending = held = None
        if outcome != "cancelled" and rng.random() < 0.15:
            index = stage_names.index("construction") if "construction" in stage_names else 0
            budget = stages[index].duration_s or 0.0
            pending = _Interrupt(
                index,
                budget * rng.uniform(0.1, 0.5),
                rng.uniform(1, 3) * DAY * scale,
                rng.choice(PENDING_REASONS),
            )
        if outcome != "cancelled" and "resource_check" in stage_names and rng.random() < 0.1:
            index = stage_names.index("resource_check")
            budget = stages[index].duration_s or 0.0
            held = _Interrupt(
                index,
                budget * rng.uniform(0.2, 0.6),
                rng.uniform(0.5, 2) * DAY * scale,
                rng.choice(HELD_REASONS),
            )
        promised = None
        if rng.random() < 0.5:
            day = (t0 + timedelta(seconds=target_s)).astimezone(SHANGHAI).date()
            promised = datetime.combine(day, time(18, 0), SHANGHAI)
        self._plan_order(
            account,
            t0,
            service=service,
            stages=stages,
            ack_s=ack_s,
            quantity=self._quantity(service),
            priority=self._priority(account),
            promised_at=promised,
            pending=pending,
            held=held,
            cancel_in_stage=rng.randrange(-1, max(1, len(stages) // 2))
            if outcome == "cancelled"
            else None,
            complete_after_s=rng.uniform(10, 120) * MINUTE * scale,
        )

    def _plan_random_request(self, t0: datetime, scale: float) -> None:
        account = self._rng.choice(self._accounts)
        if self._rng.random() < 0.65:  # faults outnumber orders on a working day
            self._random_ticket(account, t0, scale)
        else:
            self._random_order(account, t0, scale)

    # ----------------------------------------------------------------- backlog

    def _plan_backlog(self) -> None:
        rng = self._rng
        now = self.now

        def ago(seconds: float) -> datetime:
            return now - timedelta(seconds=seconds)

        # 1. The seeds' case: two more leased lines for an important social-service organisation,
        #    ordered two weeks ago; the survey started that afternoon and never finished.
        day = (now - timedelta(days=14)).date()
        created = datetime.combine(day, time(10, 15), SHANGHAI)
        self._plan_order(
            self._by_id["ORG-GD-0007"],
            created,
            service="dedicated_line.new",
            stages=[_StagePlan("survey", 160 * MINUTE, None)],
            ack_s=65 * MINUTE,
            quantity=2,
            priority="high",
            request_id=f"ORD-{day.year}-000123",
        )

        # 2. A severity-1 fault at the public security bureau, 20 minutes old, nobody has called
        #    back yet: the 15-minute respond target is already breached.
        self._plan_ticket(
            self._by_id["GOV-SZ-0042"],
            ago(20 * MINUTE),
            severity=1,
            respond_s=rng.uniform(23, 30) * MINUTE,
            on_site_s=rng.uniform(75, 105) * MINUTE,
            restore_s=rng.uniform(170, 240) * MINUTE,
        )

        # 3. Faults opened 2-5 hours ago, engineers on site, not yet restored.
        for account_id in ("FIN-GZ-0003", "ENT-SZ-0020", "ENT-FS-0031", "ENT-DG-0102"):
            age = rng.uniform(2, 5) * HOUR
            respond = rng.uniform(5, 40) * MINUTE
            self._plan_ticket(
                self._by_id[account_id],
                ago(age),
                severity=rng.choice((1, 2, 2, 3)),
                respond_s=respond,
                on_site_s=respond + rng.uniform(30, 100) * MINUTE,
                restore_s=age + rng.uniform(10, 120) * MINUTE,
                close_after_s=rng.uniform(1, 8) * HOUR,
            )

        # 4. A fault paused on the customer right now (no site access), and a fresh one.
        self._plan_ticket(
            self._by_id["HEA-GZ-0012"],
            ago(95 * MINUTE),
            severity=2,
            respond_s=8 * MINUTE,
            on_site_s=50 * MINUTE,
            restore_s=150 * MINUTE,
            pending=(10 * MINUTE, 2 * HOUR, "no_site_access"),
        )
        self._plan_ticket(
            self._by_id["ENT-DG-0250"],
            ago(6 * MINUTE),
            severity=3,
            respond_s=25 * MINUTE,
            on_site_s=3 * HOUR,
            restore_s=6 * HOUR,
        )

        # 5. Orders 3-14 days old stuck in construction (one also held on resources before).
        stuck = (
            ("HEA-GZ-0012", "dedicated_line.new", 12.0, True),
            ("ENT-SZ-0101", "dedicated_line.relocation", 9.0, False),
            ("ENT-FS-0031", "internet.new", 4.0, False),
            ("HEA-GZ-0013", "dedicated_line.new", 3.0, False),
        )
        for account_id, service, age_days, was_held in stuck:
            self._plan_stuck_order(self._by_id[account_id], service, age_days * DAY, was_held)

        # 6. History: requests of the past days and weeks, mostly finished, a few still running.
        for _ in range(len(self._accounts)):
            opened = ago(rng.uniform(10 * MINUTE, 2 * DAY))
            self._random_ticket(rng.choice(self._accounts), opened, 1.0)
        for _ in range(len(self._accounts) // 2):
            self._random_order(rng.choice(self._accounts), ago(rng.uniform(1, 30) * DAY), 1.0)

    def _plan_stuck_order(
        self, account: Account, service: str, age_s: float, was_held: bool
    ) -> None:
        rng = self._rng
        t0 = self.now - timedelta(seconds=age_s)
        stage_names = SERVICE_STAGES[service]
        ack_s = rng.uniform(0.5, 3) * HOUR
        construction_index = stage_names.index("construction")
        # Construction started some while ago and will finish only days after now.
        construction_age = age_s * rng.uniform(0.25, 0.5)
        before = self._spread(
            stage_names[:construction_index], age_s - construction_age - ack_s, slip=False
        )
        after = self._spread(
            stage_names[construction_index + 1 :], rng.uniform(2, 5) * DAY, slip=False
        )
        construction = _StagePlan(
            "construction",
            rng.uniform(1, 4) * HOUR,
            construction_age + rng.uniform(1, 4) * DAY,
        )
        held = None
        if was_held and "resource_check" in stage_names:
            index = stage_names.index("resource_check")
            budget = before[index].duration_s or 0.0
            held = _Interrupt(index, budget * 0.1, budget * 0.7, "no_resources")
        self._plan_order(
            account,
            t0,
            service=service,
            stages=[*before, construction, *after],
            ack_s=ack_s,
            quantity=self._quantity(service),
            priority=self._priority(account),
            held=held,
        )
