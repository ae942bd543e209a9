"""The gateway data plane: an HTTP/1.1 engine on asyncio Protocols, uvloop and httptools (llhttp).

No framework sits between the socket and the guard chain: a request is parsed strictly, refused
before anything reaches an upstream when it is ambiguous, and otherwise streamed through pooled
keep-alive upstream connections with flow control in both directions.
"""

from bastion.engine.server import GatewayServer

__all__ = ["GatewayServer"]
