"""The one guarded fetcher for every URL the gateway downloads (image and video parts).

A client-supplied URL is a server-side request forgery risk: the gateway runs inside AWS, where
169.254.169.254 hands out credentials and private addresses reach internal services. So, per hop:

1. the scheme must be https (http only with SKYLANE_IMAGE_ALLOW_HTTP); no credentials in the URL;
2. a host written as an IP in a legacy form (decimal `2130706433`, octal `0177.0.0.1`, hex
   `0x7f.1`, short `127.1`) is refused outright;
3. the host is resolved once, and the fetch is refused if ANY address is not public
   (`address_refusal`: loopback, private, link-local incl. the metadata service, unique-local,
   multicast, reserved, unspecified, shared/CGNAT, and IPv4 embedded in IPv6 by mapping, 6to4,
   Teredo or NAT64, judged by the embedded address);
4. the connection goes to the checked address itself (the IP is put in the URL), while the
   original name is sent as the Host header and as TLS SNI, and the certificate is verified
   against that name, so there is no second lookup for DNS rebinding to exploit;
5. redirects are not followed automatically: up to 3 are followed by hand, each new URL
   checked from step 1; every hop uses a fresh connection.

The answer must be 200 with an image/* or video/* content type; Content-Length is checked
against SKYLANE_IMAGE_MAX_BYTES before reading, and the body is streamed and abandoned as soon
as it passes the cap. The whole fetch (lookups included) runs under SKYLANE_IMAGE_FETCH_TIMEOUT.
Every refusal is an `InvalidRequest` (400) naming the reason, raised before any connection.

`fetch_media(url, settings)` is the public, strict entry point. `_fetch` takes a resolver and an
httpx transport so tests can drive the positive path (TLS, SNI, redirects) against loopback
servers without loosening the policy of the public function.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import httpx

from skylane.core.errors import InvalidRequest
from skylane.core.media import Media
from skylane.core.settings import Settings

__all__ = ["MAX_REDIRECTS", "address_refusal", "fetch_media", "literal_host_refusal"]

MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


def _refused(reason: str) -> InvalidRequest:
    return InvalidRequest(f"Image URL refused: {reason}.", param="messages", code="invalid_image_url")


def _failed(reason: str) -> InvalidRequest:
    return InvalidRequest(f"Image URL could not be fetched: {reason}.", param="messages", code="invalid_image_url")


# ---- the address policy (pure) -------------------------------------------------------------------


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "an IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "a 6to4"
    if ip.teredo is not None:
        return ip.teredo[1], "a Teredo"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "a NAT64"
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why the gateway must not connect to `ip` ("a loopback address", ...), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped IPv6 address"
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner, kind = embedded
            reason = address_refusal(inner)
            return f"{kind} {reason.removeprefix('a ').removeprefix('an ')}" if reason else None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        if isinstance(ip, ipaddress.IPv4Address):
            return "a link-local address (such as the instance metadata service)"
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in _UNIQUE_LOCAL:
        return "a unique-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a non-public address"
    return None


def literal_host_refusal(host: str) -> str | None:
    """Refuse IPv4 literals in the legacy forms inet_aton accepts (decimal, octal, hex, short)."""
    bare = host[:-1] if host.endswith(".") else host
    if not bare or not all(c in "0123456789abcdefxABCDEFX." for c in bare):
        return None
    try:
        socket.inet_aton(bare)
    except OSError:
        return None
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return "the host is an IP address in a non-standard form"
    return None


# ---- resolution and one hop's checks ---------------------------------------------------------------


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class _Hop:
    url: httpx.URL  # the pinned URL: the checked IP in place of the name
    host: str  # the name for SNI and certificate checks (IDNA-encoded)
    host_header: str
    secure: bool


async def _check(url: str, settings: Settings, resolve: Resolver) -> _Hop:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused("the URL is malformed") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and settings.image_fetch_allow_http):
        raise _refused("only https URLs are allowed" if scheme == "http" else "only http(s) URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise _refused("credentials in the URL are not allowed")
    host = parts.hostname or ""
    if not host:
        raise _refused("the URL has no host")
    if "%" in host:
        raise _refused("scoped IPv6 addresses are not allowed")
    reason = literal_host_refusal(host)
    if reason:
        raise _refused(reason)
    try:
        parsed = httpx.URL(url)
        ascii_host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise _refused("the URL is malformed") from None
    if literal_host_refusal(ascii_host):  # judge the host httpx will use, should the parsers ever disagree
        raise _refused("the host is an IP address in a non-standard form")
    port = port or (443 if scheme == "https" else 80)
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(ascii_host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = await resolve(ascii_host, port)
        except (OSError, UnicodeError):
            raise _refused("the host name could not be resolved") from None
        addresses = []
        for raw in found:
            try:
                addresses.append(ipaddress.ip_address(raw.split("%", 1)[0]))
            except ValueError:
                raise _refused("the host name resolved to an invalid address") from None
        if not addresses:
            raise _refused("the host name could not be resolved")
    for ip in addresses:
        why = address_refusal(ip)
        if why:
            raise _refused(f"resolves to {why}")
    default_port = port == (443 if scheme == "https" else 80)
    host_header = ascii_host if ":" not in ascii_host else f"[{ascii_host}]"
    if not default_port:
        host_header += f":{port}"
    pinned = parsed.copy_with(host=str(addresses[0]), port=None if default_port else port)
    return _Hop(url=pinned, host=ascii_host, host_header=host_header, secure=scheme == "https")


# ---- fetching --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi ships with httpx
        return ssl.create_default_context()


def _media_type(resp: httpx.Response) -> str:
    ctype = str(resp.headers.get("content-type", "")).split(";", 1)[0].strip().lower()
    if not ctype.startswith(("image/", "video/")):
        shown = ctype[:64] or "none"
        raise _refused(f"the content type '{shown}' is not an image or video")
    return ctype


async def _read_capped(resp: httpx.Response, limit: int) -> bytes:
    declared = resp.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _refused(f"the file is larger than {limit} bytes")
    data = bytearray()
    async for piece in resp.aiter_bytes(_CHUNK):
        data += piece
        if len(data) > limit:
            raise _refused(f"the file is larger than {limit} bytes")
    return bytes(data)


async def fetch_media(url: str, settings: Settings) -> Media:
    """Download an image or video for a provider that needs the bytes (strict policy, see module doc)."""
    return await _fetch(url, settings)


async def _fetch(
    url: str,
    settings: Settings,
    *,
    resolve: Resolver = system_resolve,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Media:
    try:
        async with asyncio.timeout(settings.image_fetch_timeout):
            return await _follow(url, settings, resolve, transport)
    except TimeoutError:
        raise _failed(f"no answer within {settings.image_fetch_timeout:g} seconds") from None


async def _follow(
    url: str, settings: Settings, resolve: Resolver, transport: httpx.AsyncBaseTransport | None
) -> Media:
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        hop = await _check(current, settings, resolve)
        # a fresh connection per hop: a pooled connection to the same IP could carry another name's TLS
        hop_transport = transport or httpx.AsyncHTTPTransport(verify=_ssl_context(), retries=0)
        client = httpx.AsyncClient(transport=hop_transport, follow_redirects=False, trust_env=False,
                                   timeout=httpx.Timeout(settings.image_fetch_timeout))
        try:
            request = client.build_request(
                "GET", hop.url,
                headers={"host": hop.host_header, "accept": "image/*, video/*",
                         "accept-encoding": "identity", "user-agent": "skylane-media-fetch/1"},
                extensions={"sni_hostname": hop.host} if hop.secure else {},
            )
            try:
                resp = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _failed(f"the connection failed ({type(exc).__name__})") from None
            try:
                if resp.status_code in _REDIRECTS:
                    location = resp.headers.get("location")
                    if not location:
                        raise _failed(f"HTTP {resp.status_code} without a Location")
                    current = urljoin(current, location)
                    continue
                if resp.status_code != 200:
                    raise _failed(f"HTTP {resp.status_code}")
                mime = _media_type(resp)
                try:
                    data = await _read_capped(resp, settings.image_fetch_max_bytes)
                except httpx.HTTPError as exc:
                    raise _failed(f"the download failed ({type(exc).__name__})") from None
                return Media(data=data, mime_type=mime)
            finally:
                await resp.aclose()
        finally:
            if transport is None:
                await client.aclose()
    raise _refused(f"more than {MAX_REDIRECTS} redirects")
