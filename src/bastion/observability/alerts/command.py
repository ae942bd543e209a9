"""The command sink: runs a program per alert, without a shell.

The alert's JSON document arrives on standard input; ``BASTION_ALERT``, ``BASTION_ALERT_KEY``,
``BASTION_ALERT_SEVERITY`` and ``BASTION_ALERT_SUMMARY`` are set in its environment. A non-zero
exit status or a timeout is a failed delivery (retried).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import ClassVar

import orjson

from bastion.observability.alerts.model import Alert, DeliveryError, inert


class CommandSink:
    kind: ClassVar[str] = "command"

    def __init__(self, argv: Sequence[str], *, name: str = "command", timeout: float = 10.0):
        if not argv:
            raise ValueError("a command sink needs a program to run")
        self.name = name
        self.argv = tuple(argv)
        self._timeout = timeout

    def deliver(self, alert: Alert) -> None:
        env = {  # inert: a NUL of a client's would make every run of the program fail
            **os.environ,
            "BASTION_ALERT": alert.action,
            "BASTION_ALERT_KEY": inert(alert.key),
            "BASTION_ALERT_SEVERITY": alert.severity,
            "BASTION_ALERT_SUMMARY": inert(alert.summary),
        }
        program = os.path.basename(self.argv[0])
        try:
            done = subprocess.run(
                self.argv,
                input=orjson.dumps(alert.document()),
                env=env,
                capture_output=True,
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DeliveryError(f"command {program} ran past {self._timeout:g} s") from exc
        except OSError as exc:
            raise DeliveryError(f"command {program} could not start: {exc.strerror}") from exc
        if done.returncode != 0:
            raise DeliveryError(f"command {program} exited with status {done.returncode}")

    def __repr__(self) -> str:
        return f"CommandSink({self.name!r}, {os.path.basename(self.argv[0])})"
