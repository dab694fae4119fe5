"""Account hierarchy: branches take their group's tier; a paid-for account its payer's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from greenlane.sla.accounts import merged_contacts, resolve_tier
from greenlane.sla.state import AccountState

T = datetime(2026, 1, 1, tzinfo=UTC)


def account(account_id: str, tier: str | None, **kw: Any) -> AccountState:
    extra = {"contacts": kw.pop("contacts", {})}
    return AccountState(account_id, account_id, tier, T, f"e-{account_id}", extra=extra, **kw)


BOOK = {
    a.account_id: a
    for a in (
        account("GRP", "group", contacts={"executive_in_charge": [{"name": "王总"}]}),
        account("GRP-SZ", None, parent_id="GRP"),  # a branch with no tier of its own
        account("GRP-SZ-FT", None, parent_id="GRP-SZ"),  # a branch of a branch
        account("HOSP", "important", contacts={"department_manager": [{"name": "李主任"}]}),
        account(
            "HOSP-LAB",
            "standard",
            billing_parent_id="HOSP",
            contacts={"handler": [{"name": "小陈"}]},
        ),
        account("OWN", "economic", parent_id="GRP"),  # its own tier wins over the group's
        account("LOOP-A", None, parent_id="LOOP-B"),
        account("LOOP-B", None, parent_id="LOOP-A"),
    )
}


def resolve(account_id: str) -> tuple[str, str]:
    return resolve_tier(BOOK.get(account_id), BOOK.get, "standard")


def test_tier_inheritance() -> None:
    assert resolve("GRP") == ("group", "account")
    assert resolve("GRP-SZ") == ("group", "parent")
    assert resolve("GRP-SZ-FT") == ("group", "parent")
    assert resolve("HOSP-LAB") == ("important", "billing_parent")
    assert resolve("OWN") == ("economic", "account")
    assert resolve("UNKNOWN") == ("standard", "default")
    assert resolve("LOOP-A") == ("standard", "default")  # a cycle ends, at the default


def test_an_unknown_parent_falls_back_to_the_default() -> None:
    orphan = account("ORPHAN", None, parent_id="NOT-YET-KNOWN")
    assert resolve_tier(orphan, BOOK.get, "standard") == ("standard", "default")


def test_contacts_of_the_payer_are_merged_in() -> None:
    merged = merged_contacts(BOOK["HOSP-LAB"], BOOK.get)
    assert merged == {"handler": [{"name": "小陈"}], "department_manager": [{"name": "李主任"}]}
