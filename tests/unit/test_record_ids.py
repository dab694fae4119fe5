"""The rules' unmemoised change id is `stable_id` of the same parts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from greenlane.sla.records import change_record_id, stable_id


@given(st.text(), st.text(), st.integers(min_value=0, max_value=10**6))
def test_change_record_id_is_stable_id(sla_id: str, kind: str, n: int) -> None:
    assert change_record_id(sla_id, kind, n) == stable_id(sla_id, kind, n)
