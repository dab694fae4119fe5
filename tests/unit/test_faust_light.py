"""Faust's per-record steps made cheaper (streams/faust_light.py) give what Faust's give."""

from __future__ import annotations

from typing import Any

import pytest
from faust.sensors import Sensor
from faust.serializers import Registry
from faust.types import TP
from unit.recording_sensor import Recorder

from greenlane.streams.faust_consumer import App
from greenlane.streams.faust_light import (
    LeanMonitor,
    RawRegistry,
    UnthreadedProducerBuffer,
    sensor_hooks,
)

SAMPLES: list[Any] = [None, b"", b"key", b'{"a": 1}', b'{"__faust": {"ns": "x"}}', "text"]


@pytest.mark.parametrize("serializer", [None, "raw", "json"])
@pytest.mark.parametrize("default", ["raw", "json"])
def test_raw_registry_decodes_as_faust_does(serializer: str | None, default: str) -> None:
    ours = RawRegistry(key_serializer=default, value_serializer=default)
    faust_own = Registry(key_serializer=default, value_serializer=default)
    for typ in (None, bytes, str):
        for data in SAMPLES:
            for name in ("loads_key", "loads_value"):
                try:
                    want: Any = getattr(faust_own, name)(typ, data, serializer=serializer)
                except Exception as exc:
                    with pytest.raises(type(exc)):
                        getattr(ours, name)(typ, data, serializer=serializer)
                else:
                    assert getattr(ours, name)(typ, data, serializer=serializer) == want


def test_the_app_uses_the_cheaper_parts_and_builds_faust_events() -> None:
    app = App("light-test", broker="kafka://localhost:1")
    assert isinstance(app.serializers, RawRegistry)
    assert isinstance(app.monitor, LeanMonitor)
    assert isinstance(app.producer.buffer, UnthreadedProducerBuffer)
    assert app.producer.buffer.size == 0
    message = type("Message", (), {"tp": TP("t", 0)})()
    event = app.create_event(b"k", b"v", None, message)  # type: ignore[arg-type]
    assert type(event) is app.conf.Event
    assert (event.key, event.value, event.message) == (b"k", b"v", message)


HOOKS = ["on_message_in", "on_stream_event_in", "on_stream_event_out", "on_message_out"]


@pytest.mark.parametrize("name", HOOKS)
def test_sensor_hooks_leave_out_only_the_hooks_that_do_nothing(name: str) -> None:
    lean, quiet, recorder = LeanMonitor(), Sensor(), Recorder()
    hooks = sensor_hooks([lean, quiet, recorder], name)
    lean_hook = [getattr(lean, name)] if name == "on_stream_event_in" else []
    assert hooks == [*lean_hook, getattr(recorder, name)]
