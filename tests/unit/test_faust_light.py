"""Faust's per-record steps made cheaper (streams/faust_light.py) give what Faust's give."""

from __future__ import annotations

from typing import Any

import pytest
from faust.serializers import Registry
from faust.types import TP

from greenlane.streams.faust_consumer import App
from greenlane.streams.faust_light import LeanMonitor, RawRegistry, UnthreadedProducerBuffer

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
