"""Cheaper per-record steps of Faust 0.15, with Faust's behaviour.

The conductor awaits `ProducerBuffer.wait_until_ebb` before delivering each record (the
stream waits while Faust's producer buffer holds more than 100 messages), and the buffer's
`size` reads the `producer_threaded` setting through Faust's settings registry each time: a
`__getattribute__` that records the access, a descriptor and its `on_get`, for every record.
Without the threaded producer (its default, and Greenlane's) the size is the length of the
buffer's queue; this buffer reads only that.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types.transports import TransportT


class UnthreadedProducerBuffer(ProducerBuffer):
    """Faust's producer buffer when the producer is not threaded: `size` without settings."""

    @property
    def size(self) -> int:
        return len(self.pending._queue)  # type: ignore[attr-defined]


class Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with the buffer above when it is not threaded."""

    def __init__(self, transport: TransportT, **kwargs: Any) -> None:
        super().__init__(transport, **kwargs)
        if not self.app.conf.producer_threaded:
            self.buffer.__class__ = UnthreadedProducerBuffer
