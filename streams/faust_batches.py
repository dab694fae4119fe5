"""Batches of a Faust stream, acknowledged only once they are done.

Faust's `take` and `take_events` acknowledge a batch in a `finally`: when the agent is
cancelled in the middle of one (a graceful stop, as in a rolling restart), its events are
acknowledged anyway, and the consumer commits them as it stops. A batch the audit writer
held through a database outage, or the tracker had not yet published, was then never read
again: lost. Here a batch is acknowledged only when the agent asks for the next one, so a
batch it did not finish is read again by the next worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import cast

import faust
from faust.types import EventT


async def done_batches(
    stream: faust.StreamT[bytes], size: int, within: float
) -> AsyncIterator[Sequence[EventT[bytes]]]:
    """Up to `size` events at a time (fewer after `within` seconds), acknowledged only when
    the caller comes back for the next batch: never if it fails or is cancelled first."""
    # noack_take is on Faust's Stream, not on its StreamT interface.
    events = cast(faust.Stream[bytes], stream)
    async for batch in events.noack_take(size, within=within):
        taken = cast(Sequence[EventT[bytes]], batch)
        yield taken
        for event in taken:
            await events.ack(event)
