"""The HTTP bulk sink against a real local HTTP server speaking Elasticsearch's ``_bulk``."""

from __future__ import annotations

import time

import orjson
import pytest

from bastion.config.events import HttpSinkConfig
from bastion.observability.sinks.bulk import HttpBulkSink
from tests.observability.helpers import BulkReceiver, bulk_receiver


def lines(count: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"n": n}) + b"\n" for n in range(start, start + count)]


def wait_for(receiver: BulkReceiver, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        docs = receiver.documents()
        if len(docs) >= count:
            return [orjson.loads(d)["n"] for d in docs]
        time.sleep(0.02)
    raise AssertionError(f"{len(receiver.documents())} of {count} documents arrived")


def config(receiver: BulkReceiver, **changes: object) -> HttpSinkConfig:
    values: dict[str, object] = {
        "url": receiver.url,
        "index": "bastion-events",
        "flush_interval": 0.05,
        "backoff": 0.02,
    }
    values.update(changes)
    return HttpSinkConfig.model_validate(values)


def test_batches_create_actions_into_the_index() -> None:
    with bulk_receiver() as receiver:
        sink = HttpBulkSink(config(receiver, batch_size=10))
        sink.write(lines(25))
        assert wait_for(receiver, 25) == list(range(25))
        sink.close()
    assert all(path == "/_bulk" for path, _, _ in receiver.requests)
    assert len(receiver.requests) >= 3  # at most 10 per request
    first = receiver.requests[0][2].splitlines()
    assert orjson.loads(first[0]) == {"create": {"_index": "bastion-events"}}
    assert receiver.requests[0][1]["content-type"] == "application/x-ndjson"


def test_retries_a_failed_batch_with_backoff_then_delivers() -> None:
    with bulk_receiver() as receiver:
        receiver.script = [503, 429, "items:429"]
        sink = HttpBulkSink(config(receiver))
        sink.write(lines(5))
        assert wait_for(receiver, 5) == list(range(5))
        sink.close()
    assert sink.dropped() == 0


def test_drops_and_counts_after_the_last_retry_and_items_refused_for_good() -> None:
    with bulk_receiver() as receiver:
        receiver.script = [500, 500, 500, "items:400"]
        sink = HttpBulkSink(config(receiver, retries=2, batch_size=3))
        sink.write(lines(3))
        sink.write(lines(3, start=3))
        deadline = time.monotonic() + 10
        while sink.dropped() < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.dropped() == 6
        assert sink.batches_failed == 1
        sink.write(lines(1, start=9))
        assert wait_for(receiver, 1) == [9]
        sink.close()


def test_an_unreachable_endpoint_never_blocks_the_caller() -> None:
    sink = HttpBulkSink(
        HttpSinkConfig(url="http://127.0.0.1:9", buffer=100, flush_interval=0.01, backoff=5.0)
    )
    started = time.perf_counter()
    for _ in range(50):
        sink.write(lines(10))
    assert time.perf_counter() - started < 0.5
    assert sink.dropped() >= 390  # 100 queued at most, the rest counted
    sink.close(timeout=0.1)


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_TEST_ES_KEY", "c2VjcmV0OmtleQ==")
    with bulk_receiver() as receiver:
        sink = HttpBulkSink(config(receiver, api_key_env="BASTION_TEST_ES_KEY"))
        sink.write(lines(1))
        wait_for(receiver, 1)
        sink.close()
    assert receiver.requests[0][1]["authorization"] == "ApiKey c2VjcmV0OmtleQ=="
    with pytest.raises(ValueError, match="BASTION_TEST_NOT_SET"):
        HttpBulkSink(config(receiver, api_key_env="BASTION_TEST_NOT_SET"))
