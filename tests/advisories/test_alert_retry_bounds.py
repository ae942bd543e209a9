"""Regression: with an alert sink down, failed deliveries waiting for their retry are bounded by
``monitoring.alerts.queue`` like the alerts waiting for a first attempt; a flood of distinct
alerts (their keys name client addresses) used to pile up in the retry schedule without limit."""

from __future__ import annotations

import logging
import time

import pytest

from bastion.observability.alerts.dispatcher import AlertDispatcher
from bastion.observability.alerts.model import Alert
from bastion.observability.alerts.webhook import WebhookSink
from tests.ports import free_port


def drained(dispatcher: AlertDispatcher) -> None:
    """Wait until every queued alert had its first attempt (the retries are a minute away)."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        with dispatcher._lock:
            if not dispatcher._queue and not dispatcher._busy:
                return
        time.sleep(0.005)
    raise AssertionError("the delivery thread did not drain its queue")


def test_retries_of_a_dead_sink_stay_within_the_queue_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", timeout=1.0)  # refused at once
    dispatcher = AlertDispatcher([dead], queue=4, retries=5, backoff=60.0, cooldown=0.0)
    try:
        with caplog.at_level(logging.ERROR, logger="bastion.alerts"):
            for i in range(40):
                dispatcher.offer(Alert("spike", f"spike:ip:198.51.100.{i}:401", "spike", 0.0))
                if i % 4 == 3:
                    drained(dispatcher)
        assert len(dispatcher._retries) <= 4
        assert dispatcher.failed + dispatcher.dropped >= 36
        assert "retry queue full (4), not retried" in caplog.text
    finally:
        dispatcher.close(timeout=2.0)
