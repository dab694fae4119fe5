"""The monthly green-channel assessment: an Excel workbook and a self-contained HTML report.

Both hold the same figures, from the audit queries over one calendar month (Asia/Shanghai):
attainment by tier, the department scorecard, breaches by stage, the worst accounts and the
month's breaches. The HTML has its charts as inline SVG and no external asset, so it can be
mailed or archived as one file. Chinese by default, English with `lang="en"`.
"""

from __future__ import annotations

import calendar
import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.chart import BarChart, Reference  # type: ignore[import-untyped]
from openpyxl.styles import Font, PatternFill  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from greenlane.audit.queries import AuditQueries, QueryError, Result, Window

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "大客户绿色通道服务考核月报",
        "month": "考核月份",
        "generated": "生成时间",
        "summary": "总体情况",
        "slas": "SLA 数",
        "met": "达标",
        "breached": "超时",
        "open": "未结",
        "cancelled": "取消",
        "attainment": "达标率 %",
        "by_tier": "按客户等级的达标率",
        "tier": "客户等级",
        "by_department": "部门考核（超时归因）",
        "department": "部门",
        "stage": "环节",
        "breaches": "超时次数",
        "over_h": "超预算时长（小时）",
        "by_stage": "按环节的超时次数",
        "worst": "风险最高的客户",
        "account": "客户",
        "near": "险些超时",
        "risk": "风险分",
        "churn": "流失预警",
        "yes": "是",
        "no": "否",
        "breach_list": "本月超时明细",
        "request": "请求",
        "target": "指标",
        "due": "承诺时间",
        "late_h": "超时（小时）",
        "rungs": "已触发升级",
        "none": "本月无数据",
        "note": "达标率 = 达标 /（达标 + 超时）；未结与取消的 SLA 不计入。SLA 按开始时间计入月份，"
        "超时按发生时间计入月份。部门与环节取自超时记录的归因（超出内部承诺的环节与交接）。",
    },
    "en": {
        "title": "Key-account green channel: monthly assessment",
        "month": "Month",
        "generated": "Generated",
        "summary": "Overview",
        "slas": "SLAs",
        "met": "Met",
        "breached": "Breached",
        "open": "Open",
        "cancelled": "Cancelled",
        "attainment": "Attainment %",
        "by_tier": "Attainment by account tier",
        "tier": "Tier",
        "by_department": "Department scorecard (breach attribution)",
        "department": "Department",
        "stage": "Stage",
        "breaches": "Breaches",
        "over_h": "Over budget (hours)",
        "by_stage": "Breaches by stage",
        "worst": "Accounts most at risk",
        "account": "Account",
        "near": "Near misses",
        "risk": "Risk score",
        "churn": "Churn risk",
        "yes": "yes",
        "no": "no",
        "breach_list": "Breaches of the month",
        "request": "Request",
        "target": "Target",
        "due": "Due",
        "late_h": "Late (hours)",
        "rungs": "Rungs fired",
        "none": "No data for this month",
        "note": "Attainment = met / (met + breached); open and cancelled SLAs are not judged. An "
        "SLA counts in the month it started, a breach in the month it happened. Departments and "
        "stages come from the breach attribution (stages and hand-offs over their internal "
        "budget).",
    },
}

TIER_NAMES = {
    "zh": {
        "important": "重要客户",
        "strategic": "战略客户",
        "economic": "经济大客户",
        "group": "集团客户",
        "standard": "标准客户",
    },
    "en": {},
}
TIER_ORDER = ("important", "strategic", "economic", "group", "standard")


@dataclass(frozen=True, slots=True)
class MonthlyFigures:
    """Everything the assessment shows, computed once for both files."""

    month: str
    lang: str
    generated_at: datetime
    totals: dict[str, Any]
    by_tier: Result
    departments: Result
    stages: list[tuple[str, int]]
    accounts: Result
    breaches: Result


def _month(text: str) -> date:
    try:
        first = date.fromisoformat(f"{text}-01")
    except ValueError:
        raise QueryError(f"month {text!r}: use YYYY-MM") from None
    return first


def monthly_figures(
    queries: AuditQueries, month: str, lang: str = "zh", as_of: datetime | None = None
) -> MonthlyFigures:
    """The figures of one calendar month."""
    if lang not in TEXT:
        raise QueryError(f"lang {lang!r}: use zh or en")
    first = _month(month)
    window = Window.parse(month=month)
    days = calendar.monthrange(first.year, first.month)[1]
    end = datetime.combine(first + timedelta(days=days), datetime.min.time(), queries.zone)
    now = as_of or min(datetime.now(UTC), end)
    by_tier = queries.compliance(window, ["tier"], "all")
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    by_tier.rows.sort(key=lambda r: (order.get(r["tier"], 99), r["tier"]))
    totals: dict[str, Any] = {k: 0 for k in ("slas", "met", "breached", "cancelled", "open")}
    for row in by_tier.rows:
        for k in totals:
            totals[k] += row[k]
    judged = totals["met"] + totals["breached"]
    totals["attainment_pct"] = round(100 * totals["met"] / judged, 2) if judged else None
    departments = queries.departments(window)
    breaches = queries.breaches(window, as_of=now)
    stages = Counter(str(r["stage"]) for r in breaches.rows if r["stage"])
    accounts = queries.accounts(as_of=end, window_days=days)
    worst = [r for r in accounts.rows if r["breached"] or r["near_misses"]][:10]
    return MonthlyFigures(
        month=month,
        lang=lang,
        generated_at=datetime.now(UTC).astimezone(queries.zone).replace(microsecond=0),
        totals=totals,
        by_tier=by_tier,
        departments=departments,
        stages=sorted(stages.items(), key=lambda kv: (-kv[1], kv[0])),
        accounts=Result(accounts.columns, worst, accounts.meta),
        breaches=breaches,
    )


def _tier(name: str, lang: str) -> str:
    return TIER_NAMES.get(lang, {}).get(name, name)


# -- SVG -------------------------------------------------------------------------------------
_PALETTE = ("#1b7f5c", "#c0392b", "#2e6da4", "#d68910", "#7d3c98", "#5d6d7e")


def bar_svg(
    bars: Sequence[tuple[str, float]],
    *,
    unit: str = "",
    color: str = _PALETTE[0],
    maximum: float | None = None,
    width: int = 640,
) -> str:
    """A horizontal bar chart as inline SVG: one labelled bar per (label, value)."""
    if not bars:
        return ""
    row_h, value_w = 28, 70
    # Wide enough for the longest label (CJK glyphs are about twice as wide as Latin ones).
    longest = max(sum(2 if ord(ch) > 0x2E80 else 1 for ch in label) for label, _v in bars)
    label_w = min(width // 2, max(120, longest * 7 + 16))
    plot_w = width - label_w - value_w
    top = maximum if maximum is not None else max(v for _l, v in bars)
    top = top or 1.0
    height = row_h * len(bars) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" class="chart">'
    ]
    for i, (label, value) in enumerate(bars):
        y = 5 + i * row_h
        w = max(0.0, plot_w * value / top)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end" class="lbl">'
            f"{html.escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" rx="3" '
            f'fill="{color}"><title>{html.escape(label)}: {value:g}{unit}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 18}" class="val">{value:g}{unit}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# -- HTML ------------------------------------------------------------------------------------
_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei","Microsoft YaHei",
"PingFang SC",system-ui,sans-serif;color:#1c2833;margin:32px auto;max-width:1000px;padding:0 16px}
h1{font-size:24px;border-bottom:3px solid #1b7f5c;padding-bottom:8px}
h2{font-size:18px;margin-top:32px;color:#1b7f5c}
.meta{color:#566573;font-size:13px}
.kpis{display:flex;gap:12px;flex-wrap:wrap}
.kpi{border:1px solid #d5dbdb;border-radius:6px;padding:10px 16px;min-width:110px}
.kpi b{display:block;font-size:24px}
.kpi.bad b{color:#c0392b}.kpi.good b{color:#1b7f5c}
table{border-collapse:collapse;font-size:13px;margin-top:8px;width:100%}
th,td{border-bottom:1px solid #e5e8e8;padding:5px 8px;text-align:left}
th{background:#f4f6f6}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.flag{color:#c0392b;font-weight:bold}
.chart .lbl{font-size:13px;fill:#1c2833}.chart .val{font-size:12px;fill:#566573}
.note{color:#566573;font-size:12px;margin-top:24px}
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if i in numeric else ''}>{_esc(v)}</td>" for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(f: MonthlyFigures) -> str:
    """The assessment as one self-contained HTML document."""
    t = TEXT[f.lang]
    tot = f.totals
    pct = "-" if tot["attainment_pct"] is None else f"{tot['attainment_pct']:.1f}"
    kpis = "".join(
        f'<div class="kpi {cls}"><span>{html.escape(t[k])}</span><b>{v}</b></div>'
        for k, v, cls in (
            ("slas", tot["slas"], ""),
            ("met", tot["met"], "good"),
            ("breached", tot["breached"], "bad"),
            ("open", tot["open"], ""),
            ("cancelled", tot["cancelled"], ""),
            ("attainment", pct, "good"),
        )
    )
    tier_bars = [
        (_tier(r["tier"], f.lang), float(r["attainment_pct"]))
        for r in f.by_tier.rows
        if r["attainment_pct"] is not None
    ]
    tier_table = _table(
        [t["tier"], t["slas"], t["met"], t["breached"], t["open"], t["attainment"]],
        [
            [
                _tier(r["tier"], f.lang),
                r["slas"],
                r["met"],
                r["breached"],
                r["open"],
                r["attainment_pct"],
            ]
            for r in f.by_tier.rows
        ],
        {1, 2, 3, 4, 5},
    )
    dept_hours: Counter[str] = Counter()
    dept_count: Counter[str] = Counter()
    for r in f.departments.rows:
        dept_hours[r["department"]] += r["over_budget_s"] / 3600
        dept_count[r["department"]] += r["breaches"]
    dept_bars = [(d, round(h, 1)) for d, h in dept_hours.most_common()]
    dept_table = _table(
        [t["department"], t["stage"], t["breaches"], t["over_h"]],
        [
            [r["department"], r["stage"], r["breaches"], r["over_budget_h"]]
            for r in f.departments.rows
        ],
        {2, 3},
    )
    stage_bars = [(s, float(n)) for s, n in f.stages]
    worst = _table(
        [t["account"], t["tier"], t["slas"], t["breached"], t["near"], t["risk"], t["churn"]],
        [
            [
                f"{r['name'] or r['account_id']} ({r['account_id']})",
                _tier(str(r["tier"]), f.lang),
                r["slas"],
                r["breached"],
                r["near_misses"],
                r["risk_score"],
                t["yes"] if r["churn_risk"] else t["no"],
            ]
            for r in f.accounts.rows
        ],
        {2, 3, 4, 5},
    ).replace(f"<td>{t['yes']}</td>", f'<td class="flag">{t["yes"]}</td>')
    latest = sorted(f.breaches.rows, key=lambda r: -(r["late_s"] or 0))[:25]
    breach_table = _table(
        [
            t["account"],
            t["request"],
            t["target"],
            t["due"],
            t["late_h"],
            t["rungs"],
            t["stage"],
            t["department"],
        ],
        [
            [
                r["account_name"] or r["account_id"],
                r["request_id"],
                r["target"],
                (r["due_at"] or "")[:16].replace("T", " "),
                round((r["late_s"] or 0) / 3600, 1),
                ",".join(str(x) for x in r["rungs"]),
                r["stage"],
                r["department"],
            ]
            for r in latest
        ],
        {4},
    )
    empty = f"<p>{html.escape(t['none'])}</p>"

    def section(title: str, *content: str) -> str:
        inner = "".join(content) if any(content) else empty
        return f"<h2>{html.escape(title)}</h2>{inner}"

    lang = "zh-CN" if f.lang == "zh" else "en"
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{html.escape(t['title'])} {f.month}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(t['title'])}</h1>"
        f'<p class="meta">{html.escape(t["month"])}: <b>{f.month}</b> · '
        f"{html.escape(t['generated'])}: {f.generated_at.isoformat()}</p>"
        f'<div class="kpis">{kpis}</div>'
        + section(
            t["by_tier"],
            bar_svg(tier_bars, unit="%", maximum=100.0),
            tier_table if f.by_tier.rows else "",
        )
        + section(
            t["by_department"],
            bar_svg(dept_bars, unit="h", color=_PALETTE[1]),
            dept_table if f.departments.rows else "",
        )
        + section(t["by_stage"], bar_svg(stage_bars, color=_PALETTE[3]))
        + section(t["worst"], worst if f.accounts.rows else "")
        + section(t["breach_list"], breach_table if latest else "")
        + f'<p class="note">{html.escape(t["note"])}</p></body></html>'
    )


# -- Excel -----------------------------------------------------------------------------------
def render_xlsx(f: MonthlyFigures, path: Path) -> None:
    """The same figures as a workbook: one sheet per section, with a chart of attainment."""
    t = TEXT[f.lang]
    wb = Workbook()
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEEE6")

    def sheet(title: str, headers: list[str], rows: list[list[Any]], first: bool = False) -> Any:
        ws = wb.active if first else wb.create_sheet()
        ws.title = title[:31]
        ws.append(headers)
        for cell in ws[1]:
            cell.font, cell.fill = bold, fill
        for row in rows:
            ws.append(row)
        for i, h in enumerate(headers, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(12, len(h) * 2 + 2)
        ws.freeze_panes = "A2"
        return ws

    tot = f.totals
    sheet(
        t["summary"],
        [
            t["month"],
            t["slas"],
            t["met"],
            t["breached"],
            t["open"],
            t["cancelled"],
            t["attainment"],
        ],
        [
            [
                f.month,
                tot["slas"],
                tot["met"],
                tot["breached"],
                tot["open"],
                tot["cancelled"],
                tot["attainment_pct"],
            ]
        ],
        first=True,
    )
    ws = sheet(
        t["by_tier"],
        [t["tier"], t["slas"], t["met"], t["breached"], t["open"], t["cancelled"], t["attainment"]],
        [
            [
                _tier(r["tier"], f.lang),
                r["slas"],
                r["met"],
                r["breached"],
                r["open"],
                r["cancelled"],
                r["attainment_pct"],
            ]
            for r in f.by_tier.rows
        ],
    )
    if f.by_tier.rows:
        chart = BarChart()
        chart.title = t["by_tier"]
        chart.y_axis.title = t["attainment"]
        n = len(f.by_tier.rows) + 1
        chart.add_data(Reference(ws, min_col=7, min_row=1, max_row=n), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=n))
        ws.add_chart(chart, "I2")
    sheet(
        t["by_department"],
        [t["month"], t["department"], t["stage"], t["breaches"], t["over_h"]],
        [
            [r["month"], r["department"], r["stage"], r["breaches"], r["over_budget_h"]]
            for r in f.departments.rows
        ],
    )
    sheet(t["by_stage"], [t["stage"], t["breaches"]], [[s, n] for s, n in f.stages])
    sheet(
        t["worst"],
        ["ID", t["account"], t["tier"], t["slas"], t["breached"], t["near"], t["risk"], t["churn"]],
        [
            [
                r["account_id"],
                r["name"],
                _tier(str(r["tier"]), f.lang),
                r["slas"],
                r["breached"],
                r["near_misses"],
                r["risk_score"],
                t["yes"] if r["churn_risk"] else t["no"],
            ]
            for r in f.accounts.rows
        ],
    )
    sheet(
        t["breach_list"],
        [
            t["account"],
            t["request"],
            t["target"],
            t["tier"],
            t["due"],
            t["late_h"],
            t["rungs"],
            t["stage"],
            t["department"],
        ],
        [
            [
                r["account_name"] or r["account_id"],
                r["request_id"],
                r["target"],
                _tier(r["tier"], f.lang),
                r["due_at"],
                round((r["late_s"] or 0) / 3600, 2),
                ",".join(map(str, r["rungs"])),
                r["stage"],
                r["department"],
            ]
            for r in f.breaches.rows
        ],
    )
    wb.save(path)


def write_report(
    queries: AuditQueries, month: str, out: Path, lang: str = "zh", as_of: datetime | None = None
) -> tuple[Path, Path]:
    """Write `greenlane-assessment-YYYY-MM[-en].xlsx` and `.html` into `out`; return both paths."""
    figures = monthly_figures(queries, month, lang, as_of)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"greenlane-assessment-{month}" + ("" if lang == "zh" else f"-{lang}")
    xlsx, page = out / f"{stem}.xlsx", out / f"{stem}.html"
    render_xlsx(figures, xlsx)
    page.write_text(render_html(figures), encoding="utf-8")
    return xlsx, page
