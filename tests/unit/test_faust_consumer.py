"""Greenlane's Faust consumer, without a broker: what it counts as done."""

from __future__ import annotations

from faust.types.tuples import Message

from greenlane.streams.faust_consumer import App, Consumer


def message(offset: int, generation: int) -> Message:
    return Message("t", 0, offset, 0.0, 0, [], b"k", b"v", None, generation_id=generation)


def test_a_message_read_before_the_latest_rebalance_is_not_counted_as_done() -> None:
    app = App("ack-test", broker="kafka://127.0.0.1:9", store="memory://")
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    # As when an agent subscribes to `t` (Faust fills this set when the app starts).
    app.topics._acking_topics.add("t")
    app.consumer_generation_id = 2
    assert consumer.ack(message(5, generation=1)) is False  # stale: skipped, not done
    assert consumer.ack(message(6, generation=2)) is True
    assert [offset for offsets in consumer._acked.values() for offset in offsets] == [6]
