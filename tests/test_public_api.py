"""The public surface is what ``bastion.__all__`` says; this pins it so changes are deliberate."""

import bastion


def test_public_api_is_pinned() -> None:
    assert sorted(bastion.__all__) == sorted(
        [
            "ALLOW",
            "Allow",
            "BastionConfig",
            "BastionMiddleware",
            "BastionError",
            "ConfigError",
            "Decision",
            "Deny",
            "EventSink",
            "Guard",
            "GuardChain",
            "MemorySink",
            "Phase",
            "ProblemField",
            "Request",
            "SecurityEvent",
            "StateKey",
            "__version__",
            "build_config",
            "load_config",
        ]
    )
    for name in bastion.__all__:
        assert hasattr(bastion, name), name
