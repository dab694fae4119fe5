"""Account hierarchy: which tier (and whose people) a key account's requests get.

From the seeds: branches of a group customer are key accounts whatever their own spend,
so a branch (`parent_id`) without its own tier takes its group's; and when A pays B's bills
(`billing_parent_id`), B is merged with A and takes A's tier and contacts.
"""

from __future__ import annotations

from collections.abc import Callable

from greenlane.sla.state import AccountState

AccountLookup = Callable[[str], AccountState | None]


def resolve_tier(
    account: AccountState | None, lookup: AccountLookup | None, default: str
) -> tuple[str, str]:
    """The tier an account's new requests are judged at, and where it came from.

    The source is `account`, `billing_parent` (merged with the account that pays),
    `parent` (a branch inheriting its group's tier) or `default` (unknown account, or no
    tier anywhere up the chain).
    """
    seen: set[str] = set()
    source = "account"
    while account is not None and account.account_id not in seen:
        seen.add(account.account_id)
        payer = lookup(account.billing_parent_id) if lookup and account.billing_parent_id else None
        if payer is not None:
            account, source = payer, "billing_parent"
            continue
        if account.tier is not None:
            return account.tier, source
        parent = lookup(account.parent_id) if lookup and account.parent_id else None
        account, source = parent, "parent"
    return default, "default"


def merged_contacts(account: AccountState, lookup: AccountLookup) -> dict[str, object]:
    """The account's contacts, with those of the account that pays its bills added."""
    contacts = dict(account.extra.get("contacts") or {})
    payer = lookup(account.billing_parent_id) if account.billing_parent_id else None
    if payer is not None:
        for role, people in (payer.extra.get("contacts") or {}).items():
            contacts.setdefault(role, people)
    return contacts
