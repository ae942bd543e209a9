"""Entry point of one worker process: ``python -m bastion.engine.worker`` with the config as JSON
on stdin (never on the command line or in the environment, where other tools could read it)."""

from __future__ import annotations

import asyncio
import sys

from bastion.config.models import BastionConfig
from bastion.engine.runtime import install_uvloop, serve


def main() -> int:
    config = BastionConfig.model_validate_json(sys.stdin.buffer.read())
    sys.stdin.close()
    install_uvloop()
    return asyncio.run(serve(config, worker=True))


if __name__ == "__main__":
    sys.exit(main())
