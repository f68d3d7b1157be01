"""Fetching a partner's feed over HTTP(S) safely, with the standard library.

A feed URL is typed by a partner, so the fetch is guarded: only http and https; every
address the name resolves to is checked, and the connection goes to the checked address
(no second DNS lookup for a rebinding trick to slip through); every address that is not
globally routable (private, shared, loopback, link-local, multicast, reserved, and IPv6
forms that embed such an IPv4 address) is refused unless ``allow_private`` is set;
redirects are followed a bounded number of times, each hop checked again; the whole
fetch has one deadline (a server that trickles a byte a second still times out); the body
is capped. Bodies are asked for uncompressed, so a small gzip cannot expand past the cap.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

USER_AGENT = "ERTG-digest-feed-reader/1.0 (+https://github.com/ertg)"


class FetchError(Exception):
    """The feed could not be fetched; the message is fit to show an editor."""


@dataclass(frozen=True)
class FetchOptions:
    timeout: float = 10.0  # seconds for the whole fetch, redirects included
    max_bytes: int = 2_000_000
    max_redirects: int = 3
    allow_private: bool = False


@dataclass(frozen=True)
class Fetched:
    """``body`` is None when the server answered 304 Not Modified."""

    url: str
    status: int
    body: bytes | None
    etag: str | None
    last_modified: str | None
    content_type: str | None


# NAT64 prefixes (RFC 6052, RFC 8215): the low 32 bits are an IPv4 address a translator
# connects to. IPv4-compatible addresses (::/96) are deprecated (RFC 4291): none is a feed.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: mapped, 6to4, Teredo (server and client)
    and NAT64. A packet to the IPv6 address may well arrive at any of them."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if any(ip in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True unless ``ip`` is globally routable (ipaddress's ``is_global``: no private,
    shared 100.64.0.0/10, loopback, link-local, benchmarking or reserved space), and so is
    every IPv4 address it embeds. An allowlist: a range nobody thought of is refused."""
    if not ip.is_global or ip.is_multicast:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        return ip in _IPV4_COMPATIBLE or any(refused(v4) for v4 in _embedded_ipv4(ip))
    return False


_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="feed-dns")


def resolve(host: str, port: int, allow_private: bool, timeout: float = 10.0) -> str:
    """The first address ``host`` resolves to, after checking every one of them.

    getaddrinfo has no timeout of its own, so it runs on a small pool and is waited for
    at most ``timeout`` seconds (a stuck lookup then ends on its own, off our path).
    """
    try:
        infos = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(timeout)
    except FutureTimeout:
        raise FetchError(f"timed out resolving {host}") from None
    except socket.gaierror as err:
        raise FetchError(f"cannot resolve {host}: {err.strerror}") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise FetchError(f"cannot resolve {host}")
    if not allow_private:
        for addr in addresses:
            if refused(ipaddress.ip_address(addr.split("%")[0])):
                raise FetchError(
                    f"refused to fetch {host}: it resolves to a private or local address, not a public one ({addr})"
                )
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self):
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self):
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _read_capped(resp: http.client.HTTPResponse, sock_owner, deadline: float, cap: int) -> bytes:
    length = resp.getheader("Content-Length")
    if length and length.isdigit() and int(length) > cap:
        raise FetchError(f"feed is too large ({int(length):,} bytes; the limit is {cap:,})")
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError("timed out reading the feed")
        if sock_owner.sock is not None:
            sock_owner.sock.settimeout(left)
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise FetchError(f"feed is too large (over {cap:,} bytes)")
        chunks.append(chunk)


def fetch(url: str, options: FetchOptions, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
    """GET ``url`` under ``options``, conditionally when ``etag``/``last_modified`` are given.

    Raises :class:`FetchError` for anything but a 200 or 304 at the end of the redirects.
    """
    deadline = time.monotonic() + options.timeout
    for _hop in range(options.max_redirects + 1):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"only http and https feed addresses are fetched, not {url[:100]!r}")
        if parts.username or parts.password:
            raise FetchError("feed addresses must not carry a user name or password")
        port = parts.port or (443 if scheme == "https" else 80)
        ip = resolve(parts.hostname, port, options.allow_private, max(0.1, deadline - time.monotonic()))
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError("timed out fetching the feed")
        cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        conn = cls(parts.hostname, port, ip, timeout=left)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Host": parts.netloc,
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            status = resp.status
            if status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                if not location:
                    raise FetchError(f"HTTP {status} redirect without a Location")
                url = urljoin(url, location)
                continue
            if status == 304:
                return Fetched(url, 304, None, etag, last_modified, None)
            if status != 200:
                raise FetchError(f"HTTP {status} {resp.reason}".strip())
            body = _read_capped(resp, conn, deadline, options.max_bytes)
            return Fetched(
                url, 200, body, resp.getheader("ETag"), resp.getheader("Last-Modified"), resp.getheader("Content-Type")
            )
        except TimeoutError:
            raise FetchError("timed out fetching the feed") from None
        except ssl.SSLError as err:
            raise FetchError(f"TLS error: {err.reason or err}") from None
        except (OSError, http.client.HTTPException) as err:
            raise FetchError(f"connection failed: {err.__class__.__name__}: {err}"[:300]) from None
        finally:
            conn.close()
    raise FetchError(f"too many redirects (more than {options.max_redirects})")
