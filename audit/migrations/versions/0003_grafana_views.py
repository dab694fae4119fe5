"""Views for Grafana's SQL data source: compliance by month, department scorecard, account health.

Months are calendar months in Asia/Shanghai. The account-health view uses the defaults of the
audit settings (90-day window, near-miss = rung 2 fired on a met SLA, risk score = breaches +
0.5 x near-misses, churn risk at a score of 3); `greenlane audit accounts` takes other values.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEWS = ("audit_compliance_monthly", "audit_department_scorecard", "audit_account_health")

_POSTGRESQL = {
    "audit_compliance_monthly": """
SELECT (date_trunc('month', s.started_at AT TIME ZONE 'Asia/Shanghai')
        AT TIME ZONE 'Asia/Shanghai') AS month,
       s.tier, s.service, s.target, coalesce(a.region, '') AS region,
       count(*) AS slas,
       count(*) FILTER (WHERE s.outcome = 'met') AS met,
       count(*) FILTER (WHERE s.outcome = 'breached') AS breached,
       count(*) FILTER (WHERE s.outcome = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE s.outcome = 'open') AS open,
       round(100.0 * count(*) FILTER (WHERE s.outcome = 'met')
             / nullif(count(*) FILTER (WHERE s.outcome IN ('met', 'breached')), 0), 2)
         AS attainment_pct
FROM sla_instances s LEFT JOIN accounts a ON a.account_id = s.account_id
WHERE s.started_at IS NOT NULL
GROUP BY 1, 2, 3, 4, 5""",
    "audit_department_scorecard": """
SELECT (date_trunc('month', s.breached_at AT TIME ZONE 'Asia/Shanghai')
        AT TIME ZONE 'Asia/Shanghai') AS month,
       e.value ->> 'department' AS department,
       e.value ->> 'stage' AS stage,
       count(DISTINCT s.sla_id) AS breaches,
       sum((e.value ->> 'over_budget_s')::bigint) AS over_budget_s
FROM sla_instances s
CROSS JOIN LATERAL json_array_elements(
  CASE WHEN json_typeof(s.attribution) = 'array' THEN s.attribution ELSE '[]'::json END) AS e
WHERE s.breached_at IS NOT NULL
GROUP BY 1, 2, 3""",
    "audit_account_health": """
SELECT s.account_id, max(a.name) AS name, max(coalesce(a.tier, s.tier)) AS tier,
       max(a.region) AS region,
       count(*) AS slas,
       count(*) FILTER (WHERE s.outcome = 'breached') AS breaches,
       count(*) FILTER (WHERE s.outcome = 'met' AND s.max_rung >= 2) AS near_misses,
       count(*) FILTER (WHERE s.outcome = 'breached')
         + 0.5 * count(*) FILTER (WHERE s.outcome = 'met' AND s.max_rung >= 2) AS risk_score,
       (count(*) FILTER (WHERE s.outcome = 'breached')
         + 0.5 * count(*) FILTER (WHERE s.outcome = 'met' AND s.max_rung >= 2)) >= 3
         AS churn_risk
FROM sla_instances s LEFT JOIN accounts a ON a.account_id = s.account_id
WHERE s.started_at >= now() - interval '90 days'
GROUP BY s.account_id""",
}

# SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'; months are shifted to +08:00.
_SQLITE = {
    "audit_compliance_monthly": """
SELECT strftime('%Y-%m-01', s.started_at, '+8 hours') AS month,
       s.tier, s.service, s.target, coalesce(a.region, '') AS region,
       count(*) AS slas,
       sum(s.outcome = 'met') AS met,
       sum(s.outcome = 'breached') AS breached,
       sum(s.outcome = 'cancelled') AS cancelled,
       sum(s.outcome = 'open') AS open,
       round(100.0 * sum(s.outcome = 'met')
             / nullif(sum(s.outcome IN ('met', 'breached')), 0), 2) AS attainment_pct
FROM sla_instances s LEFT JOIN accounts a ON a.account_id = s.account_id
WHERE s.started_at IS NOT NULL
GROUP BY 1, 2, 3, 4, 5""",
    "audit_department_scorecard": """
SELECT strftime('%Y-%m-01', s.breached_at, '+8 hours') AS month,
       json_extract(e.value, '$.department') AS department,
       json_extract(e.value, '$.stage') AS stage,
       count(DISTINCT s.sla_id) AS breaches,
       sum(json_extract(e.value, '$.over_budget_s')) AS over_budget_s
FROM sla_instances s, json_each(
  CASE WHEN json_type(s.attribution) = 'array' THEN s.attribution ELSE '[]' END) AS e
WHERE s.breached_at IS NOT NULL
GROUP BY 1, 2, 3""",
    "audit_account_health": """
SELECT s.account_id, max(a.name) AS name, max(coalesce(a.tier, s.tier)) AS tier,
       max(a.region) AS region,
       count(*) AS slas,
       sum(s.outcome = 'breached') AS breaches,
       sum(s.outcome = 'met' AND s.max_rung >= 2) AS near_misses,
       sum(s.outcome = 'breached') + 0.5 * sum(s.outcome = 'met' AND s.max_rung >= 2)
         AS risk_score,
       (sum(s.outcome = 'breached') + 0.5 * sum(s.outcome = 'met' AND s.max_rung >= 2)) >= 3
         AS churn_risk
FROM sla_instances s LEFT JOIN accounts a ON a.account_id = s.account_id
WHERE s.started_at >= datetime('now', '-90 days')
GROUP BY s.account_id""",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    bodies = _POSTGRESQL if dialect == "postgresql" else _SQLITE
    for name in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {bodies[name]}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
