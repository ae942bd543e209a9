"""BastionMiddleware added the FastAPI way, with a dependency reading what the guards found."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, ClassVar

import httpx
from fastapi import Depends, FastAPI
from fastapi import Request as FastAPIRequest

from bastion.asgi import BastionMiddleware, request_view
from bastion.config import build_config
from bastion.observability.events import MemorySink
from bastion.pipeline import ALLOW, Decision, Deny, GuardChain, Phase, Request, StateKey
from tests.asgi.conftest import Serve

CONSUMER: StateKey[str] = StateKey("test.consumer")


class ApiKeyGuard:
    """A toy authentication guard: one known key, the consumer it belongs to goes in the state."""

    name: ClassVar[str] = "test.api_key"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False

    def check(self, request: Request) -> Decision:
        if request.headers.get("x-api-key") != "bk_test_1":
            return Deny(
                401,
                "auth.missing_credentials",
                "Unauthorized",
                "An API key is required.",
                headers=(("www-authenticate", 'ApiKey realm="api"'),),
            )
        request.state[CONSUMER] = "acme"
        return ALLOW


def consumer(request: FastAPIRequest) -> str:
    view = request_view(request.scope)
    return view.state[CONSUMER] if view is not None else "anonymous"


def make_app(started: list[bool]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.append(True)
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/me")
    async def me(who: Annotated[str, Depends(consumer)]) -> dict[str, str]:
        return {"consumer": who}

    app.add_middleware(
        BastionMiddleware,
        config=build_config({}),
        chain=GuardChain([ApiKeyGuard()], MemorySink()),
    )
    return app


def test_fastapi_app_behind_the_middleware(serve: Serve) -> None:
    started: list[bool] = []
    base = serve(make_app(started), lifespan="on")

    with httpx.Client(timeout=5) as client:
        refused = client.get(f"{base}/me")
        allowed = client.get(f"{base}/me", headers={"x-api-key": "bk_test_1"})

    assert started == [True]
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'ApiKey realm="api"'
    assert refused.json()["code"] == "auth.missing_credentials"
    assert allowed.status_code == 200
    assert allowed.json() == {"consumer": "acme"}
    assert allowed.headers["x-content-type-options"] == "nosniff"
