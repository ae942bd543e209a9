"""The live context's additions for the live checks: bare probes counted against the budget,
unpaced bursts, and the second identity masked like the first."""

from __future__ import annotations

import httpx
import pytest

from bastion.audit.context import BudgetExhausted, LiveContext


async def test_spend_counts_bare_probes_against_the_budget() -> None:
    async with httpx.AsyncClient() as client:
        ctx = LiveContext("https://api.example.test", client, budget=2)
        await ctx.spend()
        await ctx.spend(paced=False)
        assert ctx.remaining == 0
        with pytest.raises(BudgetExhausted, match=r"budget \(2\) is spent"):
            await ctx.spend()


async def test_both_identities_are_masked_in_curls() -> None:
    async with httpx.AsyncClient() as client:
        ctx = LiveContext(
            "https://api.example.test",
            client,
            auth=[("Authorization", "Bearer first-secret")],
            other_auth=[("X-API-Key", "second-secret")],
        )
        curl = ctx.curl(
            "GET",
            "/items",
            headers=list(ctx.other_auth),
            query="token=first-secret",
            with_auth=True,
        )
    assert "first-secret" not in curl
    assert "second-secret" not in curl
    assert curl == (
        "curl -i -X GET -H 'Authorization: ****' -H 'X-API-Key: ****' "
        "'https://api.example.test/items?token=****'"
    )
