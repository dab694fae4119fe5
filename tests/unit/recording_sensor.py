"""A Faust sensor that records the per-record hooks it is given, for the tests of
streams/faust_light.py and streams/faust_batches.py."""

from __future__ import annotations

from typing import Any

from faust.sensors import Sensor
from faust.types import TP


class Recorder(Sensor):
    """A sensor that records every per-record hook it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        self.seen.append(("message in", offset))

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: Any) -> None:
        self.seen.append(("event in", offset))

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        self.seen.append(("event out", offset))

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        self.seen.append(("message out", offset))
