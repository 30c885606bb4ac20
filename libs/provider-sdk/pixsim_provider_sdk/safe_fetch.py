"""Fetching a source URL somebody else chose without letting it reach inside our network (SSRF).

A job's source (`image_url`, a mask, a video) is fetched from inside the dispatcher's network, so
`fetch_source`:

- takes `http` and `https` URLs only: no `file://`, no paths, no `~`;
- resolves the host itself and refuses it if any of its addresses is loopback, private (RFC 1918,
  100.64/10, fc00::/7), link-local, multicast, reserved, unspecified or a cloud metadata address, IPv4 or
  IPv6, an IPv4 address inside IPv6 included. Numeric forms such as `2130706433` or `0x7f000001` resolve
  to the address they mean, so they are refused by the same check;
- connects to the address it checked: the request goes to that IP, with the name kept in `Host` and in
  TLS (SNI and certificate check), so a second DNS answer cannot send it elsewhere (DNS rebinding);
- follows at most `max_redirects` redirects itself, checking every hop the same way;
- stops at `max_bytes` and at one deadline for the whole fetch (`timeout_s`), however slowly bytes come;
- wants the content type the parameter expects (`image/*` for an image).

Private hosts an operator trusts (the local fakes of `make run`) are listed by name in
`PIXSIM_FETCH_ALLOW_HOSTS` as `host` or `host:port`; cloud metadata addresses stay refused even then.
Every refusal and every failure raises `SourceRejected` (`param_invalid`, not retryable).
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

import httpx

from .errors import SourceRejected

ALLOW_HOSTS_ENV = "PIXSIM_FETCH_ALLOW_HOSTS"
MAX_BYTES_ENV = "PIXSIM_FETCH_MAX_BYTES"
TIMEOUT_ENV = "PIXSIM_FETCH_TIMEOUT"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_REDIRECTS = 3

#: Refused even when allow-listed: whoever reaches these reads the machine's cloud credentials.
METADATA_ADDRESSES = frozenset(
    ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_METADATA = "a cloud metadata address"
_CGNAT = ip_network("100.64.0.0/10")
_IPV4_COMPATIBLE = ip_network("::/96")  # deprecated ::a.b.c.d
_NAT64 = ip_network("64:ff9b::/96")
_NAT64_LOCAL = ip_network("64:ff9b:1::/48")
_REDIRECTS = {301, 302, 303, 307, 308}
_PORTS = {"http": 80, "https": 443}

HostPort = tuple[str, int | None]  # (host, None) allows every port of the host


# -- the operator's allow-list ------------------------------------------------------------------
def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _entry(text: str) -> HostPort:
    if "://" in text:  # a URL: its host and port
        url = httpx.URL(text)
        return _norm_host(url.host), url.port or _PORTS.get(url.scheme)
    try:
        return _norm_host(str(ip_address(text.strip("[]")))), None  # a bare IP, IPv6 without a port included
    except ValueError:
        pass
    host, colon, port = text.rpartition(":")
    if not colon:
        return _norm_host(text), None
    if not port.isdigit() or not host:
        raise ValueError(f"{ALLOW_HOSTS_ENV}: {text!r} is not host, host:port or [ipv6]:port")
    return _norm_host(host), int(port)


def parse_allow_hosts(text: str) -> frozenset[HostPort]:
    """`"127.0.0.1:8100, fake.local, [::1]:9000"` -> {("127.0.0.1", 8100), ("fake.local", None), ("::1", 9000)}."""
    return frozenset(_entry(item) for item in text.replace(" ", ",").split(",") if item.strip())


def host_port(url: str) -> str:
    """The allow-list entry of exactly this URL's host and port, e.g. `127.0.0.1:8100`."""
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii")
    return f"{f'[{host}]' if ':' in host else host}:{parsed.port or _PORTS[parsed.scheme]}"


def allow_in_env(url: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Add `url`'s host:port to `PIXSIM_FETCH_ALLOW_HOSTS` in `environ` (default: this process's):
    how `make run` and the tests let the dispatcher fetch from the local fakes they start."""
    env = os.environ if environ is None else environ
    env[ALLOW_HOSTS_ENV] = ",".join(filter(None, [env.get(ALLOW_HOSTS_ENV, ""), host_port(url)]))


@dataclass(frozen=True)
class FetchPolicy:
    """What `fetch_source` may do. `from_env()` reads `PIXSIM_FETCH_*` when called, not at import."""

    allow_hosts: frozenset[HostPort] = frozenset()
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    #: How https sources are verified: True (the default CAs) or an SSLContext trusting a private CA.
    verify: ssl.SSLContext | bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FetchPolicy:
        env = os.environ if environ is None else environ
        return cls(
            allow_hosts=parse_allow_hosts(env.get(ALLOW_HOSTS_ENV, "")),
            max_bytes=int(env.get(MAX_BYTES_ENV) or DEFAULT_MAX_BYTES),
            timeout_s=float(env.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S),
        )

    def allowing(self, *entries: str) -> FetchPolicy:
        """A copy that also allows `entries` (`host`, `host:port` or URLs)."""
        return replace(self, allow_hosts=self.allow_hosts | parse_allow_hosts(",".join(entries)))

    def allows(self, host: str, port: int) -> bool:
        host = _norm_host(host)
        return (host, port) in self.allow_hosts or (host, None) in self.allow_hosts


# -- which addresses are public ---------------------------------------------------------------
def address_problem(ip: IPv4Address | IPv6Address) -> str | None:
    """Why the fetcher may not connect to `ip` (e.g. "a loopback address"); None for a public address."""
    if ip in METADATA_ADDRESSES:
        return _METADATA
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if isinstance(ip, IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour  # ::ffff:a.b.c.d, 2002:AABB:CCDD::
        if embedded is None and (ip in _IPV4_COMPATIBLE or ip in _NAT64):
            embedded = IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:  # it reaches the IPv4 address inside: that one decides
            return address_problem(embedded)
        if ip in _NAT64_LOCAL or ip.is_site_local:
            return "a private address"
    checks = (
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip in _CGNAT, "a private (carrier-grade NAT) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((why for bad, why in checks if bad), None)


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order (tests replace this to play DNS)."""
    try:  # an address already: no need for the resolver (it runs in a worker thread)
        ip_address(host)
        return [host]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# -- fetching ---------------------------------------------------------------------------------
def check_url(source: object, param: str) -> httpx.URL:
    """`source` as an http(s) URL with a host, else `SourceRejected` (without echoing it)."""
    if isinstance(source, httpx.URL):
        url = source
    elif isinstance(source, str):
        try:
            url = httpx.URL(source.strip())
        except httpx.InvalidURL:
            raise SourceRejected(f"{param}: not a valid URL") from None
    else:
        raise SourceRejected(f"{param}: must be a URL, not {type(source).__name__}")
    if url.scheme not in _PORTS:
        what = f"a {url.scheme}: URL" if url.scheme else "a local path"
        raise SourceRejected(f"{param}: {what} is not accepted; give an http(s) URL")
    if not url.host:
        raise SourceRejected(f"{param}: the URL has no host")
    if url.port is not None and not 0 < url.port < 65536:
        raise SourceRejected(f"{param}: the URL's port is out of range")
    return url


async def checked_address(url: httpx.URL, param: str, policy: FetchPolicy) -> str:
    """The address to connect to for `url`: every address its host resolves to must pass."""
    host = _norm_host(url.host)
    port = url.port or _PORTS[url.scheme]
    if host in METADATA_HOSTS:
        raise SourceRejected(f"{param}: refused: {host} is a cloud metadata service")
    allowed = policy.allows(host, port)
    if not allowed and (host == "localhost" or host.endswith(".localhost")):  # RFC 6761, whatever DNS says
        raise SourceRejected(f"{param}: refused: {host} is a loopback name; only public hosts are fetched")
    try:
        addresses = await resolve(url.raw_host.decode("ascii"), port)
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        raise SourceRejected(f"{param}: cannot resolve the host {host}")
    literal = url.raw_host.decode("ascii") in addresses
    for address in addresses:
        try:
            problem = address_problem(ip_address(address))
        except ValueError:
            problem = "not an IP address"
        if problem == _METADATA or (problem and not allowed):
            where = f"{host} is" if literal else f"{host} resolves to"
            raise SourceRejected(f"{param}: refused: {where} {problem}; only public hosts are fetched")
    return addresses[0]


def _family_of(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower().split("/")[0]


async def fetch_source(
    source: str | httpx.URL, dest: str | Path, *, param: str, expect: str | None, policy: FetchPolicy
) -> str:
    """Download `source` into the file `dest` under `policy`; return its content type.

    `expect` is the media family the parameter wants ("image", "video", "audio"); None takes any of them.
    Raises `SourceRejected` for every refusal or failure; the caller deletes `dest` then."""
    url = check_url(source, param)
    try:
        async with asyncio.timeout(policy.timeout_s):
            return await _fetch(url, Path(dest), param, expect, policy)
    except (TimeoutError, httpx.TimeoutException):
        raise SourceRejected(
            f"{param}: the source did not arrive within the {policy.timeout_s:g} s deadline"
        ) from None


@functools.cache
def default_tls() -> ssl.SSLContext:
    """The default CAs as one TLS context for every short-lived client (fetches, webhook deliveries):
    building one reads the whole CA bundle, about 10 ms of CPU, which a client per request would pay
    every time. Environment variables are ignored, as with `trust_env=False`."""
    return httpx.create_ssl_context(trust_env=False)


def tls(verify: ssl.SSLContext | bool) -> ssl.SSLContext | bool:
    """What to give a client as `verify`: the shared default context for True."""
    return default_tls() if verify is True else verify


async def _fetch(url: httpx.URL, dest: Path, param: str, expect: str | None, policy: FetchPolicy) -> str:
    # trust_env=False: no proxy from the environment, no .netrc credentials sent to a stranger.
    async with httpx.AsyncClient(
        trust_env=False, follow_redirects=False, timeout=policy.timeout_s, verify=tls(policy.verify)
    ) as client:
        for _ in range(policy.max_redirects + 1):
            address = await checked_address(url, param, policy)
            request = client.build_request(
                "GET",
                url.copy_with(host=address),
                headers={"Host": url.netloc.decode("ascii"), "Accept-Encoding": "identity"},
                extensions={"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else None,
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.TimeoutException:
                raise
            except httpx.HTTPError as exc:
                raise SourceRejected(f"{param}: cannot fetch from {url.host}: {type(exc).__name__}") from None
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    url = check_url(url.join(location), param)  # the next hop is checked like the first
                    continue
                content_type = _check_response(response, param, expect, policy)
                await _save(response, dest, param, policy)
                return content_type
            finally:
                await response.aclose()
    raise SourceRejected(f"{param}: more than {policy.max_redirects} redirects")


def _check_response(response: httpx.Response, param: str, expect: str | None, policy: FetchPolicy) -> str:
    if response.status_code != 200:
        raise SourceRejected(f"{param}: the source answered HTTP {response.status_code}")
    content_type = response.headers.get("content-type", "")
    family = _family_of(content_type)
    if family not in ((expect,) if expect else ("image", "video", "audio")):
        found = content_type.split(";")[0].strip() or "no content type"
        raise SourceRejected(f"{param}: the source is {found}, not {expect or 'media'}")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > policy.max_bytes:
        raise SourceRejected(
            f"{param}: the source is {int(length)} bytes, over the {policy.max_bytes} byte limit"
        )
    return content_type


async def _save(response: httpx.Response, dest: Path, param: str, policy: FetchPolicy) -> None:
    written = 0
    try:
        with dest.open("wb") as out:
            async for chunk in response.aiter_bytes():
                written += len(chunk)
                if written > policy.max_bytes:
                    raise SourceRejected(f"{param}: the source is over the {policy.max_bytes} byte limit")
                out.write(chunk)
    except httpx.TimeoutException:
        raise
    except httpx.HTTPError as exc:
        raise SourceRejected(f"{param}: the download broke off: {type(exc).__name__}") from None
