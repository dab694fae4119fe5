"""The rules' quicker forms give what the plain ones give: the unmemoised change id is
`stable_id` of the same parts, and `rfc3339` is `datetime.isoformat`, character for character."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from greenlane.sla import records
from greenlane.sla.records import MAX_RFC3339, change_record_id, rfc3339, stable_id


@given(st.text(), st.text(), st.integers(min_value=0, max_value=10**6))
def test_change_record_id_is_stable_id(sla_id: str, kind: str, n: int) -> None:
    # The output contract's id: 12 bytes of BLAKE2b over the parts joined by U+001F.
    text = f"{sla_id}\x1f{kind}\x1f{n}".encode()
    expected = hashlib.blake2b(text, digest_size=12).hexdigest()
    assert change_record_id(sla_id, kind, n) == expected
    assert stable_id(sla_id, kind, n) == expected
    assert change_record_id(sla_id, kind, n) == expected  # the shared hasher is unchanged


_ZONES = st.one_of(
    st.just(UTC),
    st.builds(
        timezone,
        st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timedelta(minutes=m)),
    ),
)


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=_ZONES),
    st.booleans(),
)
def test_rfc3339_is_isoformat(moment: datetime, whole_seconds: bool) -> None:
    if whole_seconds:
        moment = moment.replace(microsecond=0)
    # The same instant in UTC first: it is memoised, and must not answer for another zone
    # (instants of two zones compare equal).
    utc = moment.astimezone(UTC)
    for each in (utc, moment, utc, moment):  # the second round from the memo
        assert rfc3339(each) == each.isoformat()


def test_rfc3339_past_its_memo_bound() -> None:
    """Filling the memo past its bound clears it, and every answer stays `isoformat`'s."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(MAX_RFC3339 + 10):
        moment = start + timedelta(seconds=n)
        assert rfc3339(moment) == moment.isoformat()
        assert len(records._RFC3339) <= MAX_RFC3339
    assert rfc3339(start) == start.isoformat()
