"""The transport's errors: what can go wrong between the gateway and a provider, whichever client
carried the call (transport/h1.py raises them; transport/http.py maps httpx's onto them). The
pipeline turns them into the client's answer (pipeline/attempt.py): a refused connection or a failed
TLS handshake 503, a connect or pool timeout 504, the rest a provider error (502) or, mid-stream,
the stream's error event."""

from __future__ import annotations

__all__ = ["ConnectError", "ConnectTimeout", "LocalProtocolError", "PoolTimeout", "ReadError", "ReadTimeout",
           "RemoteProtocolError", "TransportError", "UnsupportedURL"]


class TransportError(Exception):
    """Any failure of the connection to a provider."""


class ConnectError(TransportError):
    """Refused, unreachable, unresolvable, or the TLS handshake failed."""


class ConnectTimeout(TransportError):
    """No connection within the connect timeout."""


class PoolTimeout(ConnectTimeout):
    """Every connection of the pool stayed busy for the connect timeout."""


class ReadTimeout(TransportError):
    """The provider sent nothing for the read timeout."""


class ReadError(TransportError):
    """The connection dropped while the request or its answer was on it."""


class RemoteProtocolError(TransportError):
    """The provider's answer is not well-formed HTTP/1.1."""


class LocalProtocolError(TransportError):
    """The request cannot be sent as asked (a header or URL holds characters HTTP cannot carry)."""


class UnsupportedURL(LocalProtocolError):
    """Not an http(s) URL with a host."""
