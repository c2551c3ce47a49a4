"""The guarded media fetcher: the address policy, the SSRF suite, and the positive path over real TLS.

The SSRF suite feeds the PUBLIC `fetch_media` URLs that reach loopback in every spelling, with a
listener on 127.0.0.1 that must never see a connection. The positive path (TLS with SNI, Host,
certificate checks, redirects, caps) uses the inner `_fetch` with an injected resolver (a name
resolves to a public address) and an injected transport that stands in for the network: it
forwards connections made to that public address to a TLS server on loopback, and passes every
other connection through unchanged, so a policy hole would still reach the listener.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skylane.core.errors import InvalidRequest
from skylane.core.settings import Settings
from skylane.transport.fetch import _fetch, address_refusal, fetch_media, literal_host_refusal
from tests.helpers import PNG

PUBLIC_IP = "93.184.216.34"  # stands for "some public host"; never contacted (the transport redirects)


def settings(**env: str) -> Settings:
    return Settings.from_env({"SKYLANE_AUTH": "disabled", **env})


# ---- the pure policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("addr, reason", [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("fd00:ec2::254", "unique-local"), ("fc00::1", "unique-local"),
    ("224.0.0.251", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("100.64.0.1", "carrier-grade"), ("240.0.0.1", "private"), ("192.0.2.10", "private"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"), ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::ffff:10.1.1.1", "IPv4-mapped private"), ("2002:7f00:1::", "6to4 loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
])
def test_address_policy_refuses(addr, reason):
    why = address_refusal(ipaddress.ip_address(addr))
    assert why is not None and reason in why


@pytest.mark.parametrize("addr", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_address_policy_allows_public(addr):
    assert address_refusal(ipaddress.ip_address(addr)) is None


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "017700000001",
                                  "127.0.0.1.", "0251.0376.0251.0376"])
def test_legacy_ip_forms_refused(host):
    assert literal_host_refusal(host) == "the host is an IP address in a non-standard form"


@pytest.mark.parametrize("host", ["127.0.0.1", "img.test", "cafe", "beef.example", "1.2.3.4"])
def test_canonical_hosts_not_flagged(host):
    assert literal_host_refusal(host) is None


# ---- the SSRF suite: a loopback listener that must never be reached ------------------------------


@dataclass
class Listener:
    port: int
    connections: int = 0


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    info = Listener(port=0)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 4\r\n\r\nPWND")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    info.port = server.sockets[0].getsockname()[1]
    async with server:
        yield info
    assert info.connections == 0, "the fetcher connected to loopback"


SSRF_URLS = [
    ("http://127.0.0.1:{port}/x.png", "loopback"),
    ("https://127.0.0.1:{port}/x.png", "loopback"),
    ("http://localhost:{port}/x.png", "loopback"),
    ("http://2130706433:{port}/x.png", "non-standard"),
    ("http://0177.0.0.1:{port}/x.png", "non-standard"),
    ("http://0x7f.0.0.1:{port}/x.png", "non-standard"),
    ("http://0x7f000001:{port}/x.png", "non-standard"),
    ("http://127.1:{port}/x.png", "non-standard"),
    ("http://127.0.0.1.:{port}/x.png", "non-standard"),
    ("http://[::ffff:127.0.0.1]:{port}/x.png", "IPv4-mapped loopback"),
    ("http://[::ffff:7f00:1]:{port}/x.png", "IPv4-mapped loopback"),
    ("http://[::1]:{port}/x.png", "loopback"),
    ("http://0.0.0.0:{port}/x.png", "unspecified"),
    ("http://[::]:{port}/x.png", "unspecified"),
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "unique-local"),
    ("http://10.0.0.1/x.png", "private"),
    ("http://[fe80::1%25eth0]:{port}/x.png", "scoped"),
]


@pytest.mark.parametrize("template, reason", SSRF_URLS)
async def test_ssrf_urls_refused_without_connecting(listener, template, reason):
    url = template.format(port=listener.port)
    with pytest.raises(InvalidRequest) as exc:
        await fetch_media(url, settings(SKYLANE_IMAGE_ALLOW_HTTP="true"))
    assert exc.value.status == 400
    assert exc.value.message.startswith("Image URL refused: ")
    assert reason in exc.value.message


@pytest.mark.parametrize("url, reason", [
    ("http://img.test/x.png", "only https"),
    ("ftp://img.test/x.png", "only http(s)"),
    ("file:///etc/passwd", "only http(s)"),
    ("https://user:secret@img.test/x.png", "credentials"),
    ("https:///x.png", "no host"),
    ("https://img.test:99999/x.png", "malformed"),
])
async def test_public_function_policy_is_strict(url, reason):
    async def no_lookups(host: str, port: int) -> list[str]:
        raise AssertionError("resolved a URL that should be refused first")

    with pytest.raises(InvalidRequest) as exc:
        await _fetch(url, settings(), resolve=no_lookups)
    assert reason in exc.value.message


async def test_unresolvable_host_refused():
    with pytest.raises(InvalidRequest) as exc:
        await fetch_media("https://does-not-exist.invalid/x.png", settings())
    assert "could not be resolved" in exc.value.message


# ---- a TLS server on loopback, reachable only through the injected transport ----------------------


def _tls_material(tmp: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a leaf certificate for `host`: (server context, client context trusting the CA)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Skylane test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
          .not_valid_after(now + timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp / "leaf.pem", tmp / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


Route = Callable[[asyncio.StreamWriter], Awaitable[None]]


@dataclass
class TLSServer:
    port: int
    client_ctx: ssl.SSLContext
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)  # sni, host, path per request


def respond(status: int, headers: dict[str, str], body: bytes = b"", chunked: bool = False) -> Route:
    async def send(writer: asyncio.StreamWriter) -> None:
        head = f"HTTP/1.1 {status} X\r\nconnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if chunked:
            writer.write((head + "transfer-encoding: chunked\r\n\r\n").encode())
            for i in range(0, len(body), 4096):
                part = body[i:i + 4096]
                writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write((head + f"content-length: {len(body)}\r\n\r\n").encode() + body)
        await writer.drain()

    return send


@pytest.fixture
async def tls_server(tmp_path) -> AsyncIterator[TLSServer]:
    server_ctx, client_ctx = _tls_material(tmp_path, "img.test")
    state = TLSServer(port=0, client_ctx=client_ctx)
    sni: dict[int, str | None] = {}

    def on_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        sni[id(sock)] = name

    server_ctx.sni_callback = on_sni  # type: ignore[assignment]

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        ssl_obj = writer.get_extra_info("ssl_object")
        state.seen.append({"sni": sni.get(id(ssl_obj)) or "", "host": headers.get("host", ""), "path": path})
        route = state.routes.get(path, respond(404, {"content-type": "text/plain"}, b"nope"))
        try:
            await route(writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_ctx)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


class LoopbackDialer(httpx.AsyncBaseTransport):
    """Stands in for the network: connections to PUBLIC_IP:443 go to the loopback TLS server instead.

    Every other destination passes through untouched, so a hole in the policy would be noticed.
    """

    def __init__(self, port: int, verify: ssl.SSLContext) -> None:
        self.port = port
        self.inner = httpx.AsyncHTTPTransport(verify=verify, retries=0)
        self.seen: list[tuple[str, int | None, str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.host, request.url.port, request.headers.get("host", ""),
                          request.extensions.get("sni_hostname")))
        if request.url.host == PUBLIC_IP:
            request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host in table:
            return table[host]
        from skylane.transport.fetch import system_resolve

        return await system_resolve(host, port)

    return resolve


PUBLIC = {"img.test": [PUBLIC_IP], "other.test": [PUBLIC_IP]}


async def test_fetch_over_tls_pins_the_checked_ip_and_keeps_host_and_sni(tls_server):
    tls_server.routes["/cat.png"] = respond(200, {"content-type": "image/png"}, PNG)
    dialer = LoopbackDialer(tls_server.port, tls_server.client_ctx)
    calls: list[str] = []
    media = await _fetch("https://img.test/cat.png", settings(), resolve=resolver(PUBLIC, calls), transport=dialer)
    assert media.data == PNG and media.mime_type == "image/png"
    # one lookup, and the connection went to the address that was checked, with the name kept
    assert calls == ["img.test"]
    assert dialer.seen == [(PUBLIC_IP, None, "img.test", "img.test")]
    assert tls_server.seen == [{"sni": "img.test", "host": "img.test", "path": "/cat.png"}]


async def test_certificate_is_checked_against_the_url_name(tls_server):
    tls_server.routes["/cat.png"] = respond(200, {"content-type": "image/png"}, PNG)
    dialer = LoopbackDialer(tls_server.port, tls_server.client_ctx)
    with pytest.raises(InvalidRequest) as exc:  # the server's certificate is for img.test only
        await _fetch("https://other.test/cat.png", settings(), resolve=resolver(PUBLIC), transport=dialer)
    assert "could not be fetched" in exc.value.message
    assert tls_server.seen == []


async def test_dns_answer_with_any_private_address_is_refused(tls_server, listener):
    table = {"img.test": [PUBLIC_IP, "127.0.0.1"]}
    with pytest.raises(InvalidRequest) as exc:
        await _fetch("https://img.test/cat.png", settings(), resolve=resolver(table),
                     transport=LoopbackDialer(tls_server.port, tls_server.client_ctx))
    assert "resolves to a loopback address" in exc.value.message
    assert tls_server.seen == []


@pytest.mark.parametrize("location", [
    "http://127.0.0.1:{port}/steal",
    "https://localhost:{port}/steal",
    "http://2130706433:{port}/steal",
    "http://[::ffff:127.0.0.1]:{port}/steal",
    "https://internal.test:{port}/steal",  # a name the resolver maps to loopback
    "http://169.254.169.254/latest/meta-data/",
])
async def test_redirect_to_loopback_is_refused_before_connecting(tls_server, listener, location):
    target = location.format(port=listener.port)
    tls_server.routes["/hop"] = respond(302, {"location": target})
    table = {**PUBLIC, "internal.test": ["127.0.0.1"]}
    with pytest.raises(InvalidRequest) as exc:
        await _fetch("https://img.test/hop", settings(SKYLANE_IMAGE_ALLOW_HTTP="1"), resolve=resolver(table),
                     transport=LoopbackDialer(tls_server.port, tls_server.client_ctx))
    assert exc.value.message.startswith("Image URL refused: ")
    assert [s["path"] for s in tls_server.seen] == ["/hop"]  # the first hop happened, the second never did


async def test_redirects_followed_up_to_three(tls_server):
    for i in range(1, 5):
        tls_server.routes[f"/r{i}"] = respond(301 if i % 2 else 307, {"location": f"/r{i + 1}"})
    tls_server.routes["/r5"] = respond(200, {"content-type": "image/gif"}, b"GIF89a")
    dialer = LoopbackDialer(tls_server.port, tls_server.client_ctx)
    media = await _fetch("https://img.test/r2", settings(), resolve=resolver(PUBLIC), transport=dialer)
    assert media.mime_type == "image/gif" and [s["path"] for s in tls_server.seen] == ["/r2", "/r3", "/r4", "/r5"]
    tls_server.seen.clear()
    with pytest.raises(InvalidRequest) as exc:
        await _fetch("https://img.test/r1", settings(), resolve=resolver(PUBLIC), transport=dialer)
    assert "more than 3 redirects" in exc.value.message
    assert [s["path"] for s in tls_server.seen] == ["/r1", "/r2", "/r3", "/r4"]


async def test_https_to_http_redirect_refused(tls_server):
    tls_server.routes["/down"] = respond(302, {"location": "http://img.test/cat.png"})
    with pytest.raises(InvalidRequest) as exc:
        await _fetch("https://img.test/down", settings(), resolve=resolver(PUBLIC),
                     transport=LoopbackDialer(tls_server.port, tls_server.client_ctx))
    assert "only https" in exc.value.message


@pytest.mark.parametrize("route, reason", [
    (respond(200, {"content-type": "text/html"}, b"<html>"), "content type 'text/html'"),
    (respond(200, {}, PNG), "content type 'none'"),
    (respond(200, {"content-type": "image/png"}, b"x" * 5000), "larger than 1024 bytes"),
    (respond(200, {"content-type": "image/png"}, b"x" * 5000, chunked=True), "larger than 1024 bytes"),
    (respond(404, {"content-type": "text/plain"}, b"missing"), "HTTP 404"),
    (respond(302, {}), "without a Location"),
])
async def test_answers_refused(tls_server, route, reason):
    tls_server.routes["/x"] = route
    with pytest.raises(InvalidRequest) as exc:
        await _fetch("https://img.test/x", settings(SKYLANE_IMAGE_MAX_BYTES="1024"), resolve=resolver(PUBLIC),
                     transport=LoopbackDialer(tls_server.port, tls_server.client_ctx))
    assert reason in exc.value.message and exc.value.status == 400


async def test_video_and_size_at_the_cap_accepted(tls_server):
    tls_server.routes["/v.mp4"] = respond(200, {"content-type": "video/mp4; codecs=avc1"}, b"v" * 1024, chunked=True)
    media = await _fetch("https://img.test/v.mp4", settings(SKYLANE_IMAGE_MAX_BYTES="1024"), resolve=resolver(PUBLIC),
                         transport=LoopbackDialer(tls_server.port, tls_server.client_ctx))
    assert media.mime_type == "video/mp4" and len(media.data) == 1024


async def test_slow_server_times_out(tls_server):
    async def stall(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    tls_server.routes["/slow"] = stall
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(InvalidRequest) as exc:
        await _fetch("https://img.test/slow", settings(SKYLANE_IMAGE_FETCH_TIMEOUT="0.3"), resolve=resolver(PUBLIC),
                     transport=LoopbackDialer(tls_server.port, tls_server.client_ctx))
    assert "no answer within 0.3 seconds" in exc.value.message
    assert loop.time() - t0 < 2
