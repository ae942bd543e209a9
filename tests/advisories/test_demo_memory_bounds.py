"""Regression: the demo API keeps at most 1000 items, as its OpenAPI document declares for
``GET /items`` (``maxItems: 1000``): every client of a demo could grow its item store without
limit, and past 1000 items the listing broke the document's promise. An item id of thousands of
digits is an unknown item, not a crash."""

from __future__ import annotations

import asyncio

import orjson

from bastion.demo.api import DemoAPI
from bastion.pipeline.request import ClientAddress, Headers, Request


def call(api: DemoAPI, method: str, body: bytes = b"") -> tuple[int, object]:
    request = Request(
        method=method,
        path="/items",
        query="",
        headers=Headers([(b"content-type", b"application/json")]),
        client=ClientAddress("127.0.0.1", 1),
        request_id="rid",
    )
    request.body = body
    response = asyncio.run(api.items_route(request))
    return response.status, orjson.loads(response.body)


def test_the_item_store_is_bounded_and_keeps_the_newest() -> None:
    api = DemoAPI()
    for i in range(1_200):
        status, _ = call(api, "POST", orjson.dumps({"name": f"item{i}"}))
        assert status == 201
    status, listed = call(api, "GET")
    assert status == 200
    assert isinstance(listed, dict)
    items = listed["items"]
    assert len(items) <= 1_000
    names = {item["name"] for item in items}
    assert "item1199" in names
    assert {"lamp", "desk"} <= names  # the seeded items the tour reads stay


def test_an_endless_item_id_is_a_404_not_a_crash() -> None:
    """``int()`` refuses more than 4300 digits: the demo answered 500 (its handler raised)."""
    request = Request(
        method="GET",
        path="/items/" + "1" * 5000,
        query="",
        headers=Headers([]),
        client=ClientAddress("127.0.0.1", 1),
        request_id="rid",
    )
    response = asyncio.run(DemoAPI().items_route(request))
    assert response.status == 404
