"""The HTTP bulk sink: events to an Elasticsearch or OpenSearch ``_bulk`` endpoint.

Lines queue in a bounded buffer of the sink's own and a thread sends them in batches (newline
delimited ``create`` actions, so the index may be a data stream). A batch that fails as a whole
(connection refused, timeout, 429, 5xx) is retried with exponential back-off; items the endpoint
refuses with 429 or 5xx inside an otherwise successful answer are retried alone. After
``retries`` attempts, or for items refused for good (4xx), the events are dropped and counted.
The queue keeps taking new events while a batch waits, up to its bound: nothing blocks.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import time
from typing import Any

import httpx
import orjson

from bastion.config.events import HttpSinkConfig
from bastion.errors import describe
from bastion.observability.sinks.background import BUFFER_BYTES, BatchWorker

logger = logging.getLogger("bastion.events")

MAX_BACKOFF = 30.0


def bulk_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/_bulk") else url + "/_bulk"


def auth_headers(config: HttpSinkConfig) -> dict[str, str]:
    """The Authorization header from the environment variables the config names."""
    if config.api_key_env is not None:
        key = os.environ.get(config.api_key_env)
        if not key:
            raise ValueError(
                f"events.http.api_key_env names {config.api_key_env}, which is not set;"
                " expected the Elasticsearch API key in it"
            )
        return {"authorization": f"ApiKey {key}"}
    if config.username is not None:
        password = os.environ.get(config.password_env, "") if config.password_env else ""
        token = base64.b64encode(f"{config.username}:{password}".encode()).decode()
        return {"authorization": f"Basic {token}"}
    return {}


class HttpBulkSink(BatchWorker[bytes]):
    name = "http"

    def __init__(self, config: HttpSinkConfig, *, max_bytes: int = BUFFER_BYTES) -> None:
        assert config.url is not None  # checked by EventsConfig
        self.url = bulk_url(config.url)
        self.retries = config.retries
        self.backoff = config.backoff
        self.batches_failed = 0
        self.endpoint_dropped = 0
        action = orjson.dumps({"create": {"_index": config.index}}) + b"\n"
        self._action = action
        self._client = httpx.Client(
            timeout=config.timeout,
            headers={"content-type": "application/x-ndjson", **auth_headers(config)},
        )
        super().__init__(
            capacity=config.buffer,
            batch_size=config.batch_size,
            flush_interval=config.flush_interval,
            max_bytes=max_bytes,
        )

    def write(self, lines: list[bytes]) -> None:
        self.put(lines)

    def weigh(self, item: bytes) -> int:
        return len(item)

    def dropped(self) -> int:
        return self.queue_dropped + self.endpoint_dropped

    def handle(self, batch: list[bytes]) -> None:
        pending = batch
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
                if self.closing:
                    break
                time.sleep(delay * (0.5 + random.random() / 2))
            pending = self._send(pending)
            if not pending:
                return
        self.batches_failed += 1
        self.endpoint_dropped += len(pending)
        logger.error("events http sink: %d events dropped after retries", len(pending))

    def _send(self, lines: list[bytes]) -> list[bytes]:
        """Send ``lines``; the ones worth sending again (empty when done)."""
        body = b"".join(self._action + line for line in lines)
        try:
            response = self._client.post(self.url, content=body)
        except httpx.HTTPError as exc:
            logger.warning("events http sink: %s", describe(exc))
            return lines
        if response.status_code == 429 or response.status_code >= 500:
            logger.warning("events http sink: the endpoint answered %d", response.status_code)
            return lines
        if response.status_code >= 300:
            logger.error(
                "events http sink: the endpoint refused a batch (%d); %d events dropped",
                response.status_code,
                len(lines),
            )
            self.endpoint_dropped += len(lines)
            return []
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return []
        if not answer.get("errors"):
            return []
        again: list[bytes] = []
        for line, item in zip(lines, answer.get("items", ()), strict=False):
            result: dict[str, Any] = next(iter(item.values()), {})
            status = int(result.get("status", 200))
            if status == 429 or status >= 500:
                again.append(line)
            elif status >= 300:
                self.endpoint_dropped += 1
        return again

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        self._client.close()
