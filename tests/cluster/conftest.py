"""Fixtures for the cluster tests: the engine tests' recording upstream (on uvloop) and
:func:`cluster_factory`, which starts real ``bastion serve`` processes and always stops them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.processes import Cluster
from tests.engine.conftest import pytest_asyncio_loop_factories, upstream

__all__ = ["pytest_asyncio_loop_factories", "upstream"]


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """``factory(config, n=3)``: ``n`` gateways on one config, started once their ``probe``
    (``readyz``, or ``healthz`` for a gateway that is expected not to be ready) answers 200;
    all stopped after the test."""
    made: list[Cluster] = []

    def factory(config: dict[str, object], n: int = 3, *, probe: str = "readyz") -> Cluster:
        cluster = Cluster(tmp_path / f"cluster-{len(made)}", config)
        made.append(cluster)
        return cluster.start(n, probe=probe)

    yield factory
    for cluster in made:
        cluster.stop()
