"""SSRF: a source URL somebody else chose must never make the dispatcher read a local file or reach a host
inside our network, and a source that cannot be fetched ends its job at once with `param_invalid`.

Every row of `TABLE` is refused twice: by the SDK's `resolve_source`, and through the whole pipeline
(`image_to_video` on sim, then the generation must end `failed` / `param_invalid` naming `image_url`).
A local listener counts the connections it accepts, and `socket.connect` is watched, to prove that no
connection was even attempted: the refusal is safe_fetch's, before any connect (the conftest guard that
stops tests from reaching the outside world would raise RuntimeError instead, not SourceRejected).
The redirect, size and deadline cases run on a system of their own whose allow-list holds `Site`.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import ipaddress
import selectors
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from accounts import kit
from accounts.kit import AccountsFake, AcctProvider, running
from conftest import own_servers
from pixsim_provider_sdk import FetchPolicy, LoadedProvider, Registry, SourceRejected
from pixsim_provider_sdk import safe_fetch as sf
from pixsim_provider_sdk.files import resolve_source
from support import create, wait_for

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
MAX_BYTES = 64 * 1024  # the size cap of the system below
DEADLINE_S = 2.0  # its whole-fetch deadline

#: Names only the tests' DNS knows (safe_fetch.resolve is patched; the real resolver is used for the rest).
DNS = {
    "rebind.test": ["127.0.0.1"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],
    "inside.test": ["10.1.2.3"],
}

# (id, URL with {port} = the listener and {site} = an allow-listed web server, what the refusal must say)
TABLE = [
    ("file-url", "file:///etc/passwd", "a file: URL is not accepted"),
    ("path", "/etc/passwd", "a local path is not accepted"),
    ("home", "~/.bashrc", "a local path is not accepted"),
    ("proc", "/proc/self/environ", "a local path is not accepted"),
    ("gopher", "gopher://127.0.0.1:{port}/_x", "a gopher: URL is not accepted"),
    ("loopback", "http://127.0.0.1:{port}/a.png", "127.0.0.1 is a loopback address"),
    ("localhost", "http://localhost:{port}/a.png", "localhost is a loopback name"),
    ("localhost-dot", "http://LocalHost.:{port}/a.png", "localhost is a loopback name"),
    ("sub-localhost", "http://api.localhost:{port}/a.png", "api.localhost is a loopback name"),
    ("ipv6-loopback", "http://[::1]:{port}/a.png", "::1 is a loopback address"),
    ("rfc1918-10", "http://10.0.0.1/a.png", "10.0.0.1 is a private address"),
    ("rfc1918-172", "http://172.16.0.1/a.png", "172.16.0.1 is a private address"),
    ("rfc1918-192", "http://192.168.0.1/a.png", "192.168.0.1 is a private address"),
    ("cgnat", "http://100.64.0.1/a.png", "carrier-grade NAT"),
    ("ula", "http://[fc00::1]/a.png", "fc00::1 is a private address"),
    ("link-local", "http://[fe80::1]/a.png", "link-local"),
    ("multicast", "http://224.0.0.1/a.png", "multicast"),
    ("metadata", "http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("metadata-v6", "http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address"),
    ("metadata-name", "http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service"),
    ("unspecified", "http://0.0.0.0:{port}/", "0.0.0.0 is an unspecified address"),
    ("unspecified-v6", "http://[::]:{port}/", "an unspecified address"),
    ("v4-mapped", "http://[::ffff:127.0.0.1]:{port}/", "::ffff:127.0.0.1 is a loopback address"),
    ("v4-mapped-metadata", "http://[::ffff:a9fe:a9fe]/", "cloud metadata address"),
    ("v4-compatible", "http://[::127.0.0.1]:{port}/", "a loopback address"),
    ("nat64", "http://[64:ff9b::7f00:1]:{port}/", "a loopback address"),
    ("decimal", "http://2130706433:{port}/", "2130706433 resolves to a loopback address"),
    ("hex", "http://0x7f000001:{port}/", "0x7f000001 resolves to a loopback address"),
    ("short", "http://127.1:{port}/", "127.1 resolves to a loopback address"),
    ("octal", "http://0177.0.0.1:{port}/", "not a valid URL"),
    ("port-out-of-range", "http://93.184.216.34:99999/", "port is out of range"),
    ("name-to-loopback", "http://rebind.test:{port}/a.png", "rebind.test resolves to a loopback address"),
    ("one-of-many", "http://mixed.test:{port}/a.png", "mixed.test resolves to a loopback address"),
    ("name-to-private", "http://inside.test/a.png", "inside.test resolves to a private address"),
    ("redirect-to-loopback", "{site}/redirect?to=http://127.0.0.1:{port}/a.png", "127.0.0.1 is a loopback address"),
    ("redirect-to-file", "{site}/redirect?to=file:///etc/passwd", "a file: URL is not accepted"),
    ("redirect-to-metadata", "{site}/redirect?to=http://169.254.169.254/", "cloud metadata address"),
    ("redirect-to-garbage", "{site}/redirect?to=http%3A%2F%2F%5B%3A%3A1", "RemoteProtocolError"),  # httpx refuses the Location
]  # fmt: skip
PIPELINE_TABLE = [
    row for row in TABLE if "{site}" not in row[1]
]  # the shared pipeline allows the sim fake only
REDIRECTS = [row for row in TABLE if "{site}" in row[1]]


# -- the outside world, on loopback -----------------------------------------------------------------
class Listener:
    """A loopback port (IPv4 and, where there is one, IPv6) that counts every connection it accepts."""

    def __init__(self) -> None:
        self.accepted = 0
        self.socks = [socket.create_server(("127.0.0.1", 0))]
        self.port = self.socks[0].getsockname()[1]
        with contextlib.suppress(OSError):
            self.socks.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with selectors.DefaultSelector() as sel:
            for sock in self.socks:
                sel.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.05):
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    self.accepted += 1
                    conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for sock in self.socks:
            sock.close()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", unquote(query.removeprefix("to=")))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/a.png":
            self._send("image/png", PNG)
        elif path == "/page.html":
            self._send("text/html; charset=utf-8", b"<html>not an image</html>")
        elif path == "/big.png":  # says how big it is
            self._send("image/png", PNG + bytes(4 * MAX_BYTES))
        elif path == "/endless.png":  # does not say: the cap must hold while reading
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(64):
                    self.wfile.write(bytes(16 * 1024))
        elif path == "/slow.png":  # one byte every 0.5 s: every read is quick, the whole is not
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(100):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.5)
        else:
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    def _send(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Site(ThreadingHTTPServer):
    """A web server the fetcher is allowed to reach: an image, a web page, a 404, files too big, a slow
    one, and `/redirect?to=<url>`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.stop()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.stop()


@pytest.fixture
def connects(monkeypatch) -> list[Any]:
    """Every socket.connect the process attempts during the test (before the conftest guard sees it)."""
    attempts: list[Any] = []
    guarded = socket.socket.connect

    def recording(self: socket.socket, address: Any) -> Any:
        attempts.append(address)
        return guarded(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    return attempts


@pytest.fixture(autouse=True)
def dns(monkeypatch) -> None:
    real = sf.resolve

    async def resolve(host: str, port: int) -> list[str]:
        return DNS[host] if host in DNS else await real(host, port)

    monkeypatch.setattr(sf, "resolve", resolve)  # the dispatcher in this process uses it too


def _url(template: str, listener: Listener, site: Site) -> str:
    return template.format(port=listener.port, site=site.url)


def _nothing_reached(listener: Listener, connects: list[Any], *allowed_ports: int) -> None:
    assert listener.accepted == 0, "a connection reached the listener"
    suspicious = [
        a
        for a in connects
        if isinstance(a, tuple)
        and (
            a[1] == listener.port
            or (a[1] not in allowed_ports and not ipaddress.ip_address(a[0]).is_loopback)
        )
    ]
    assert not suspicious, f"connections were attempted: {suspicious}"


# -- the table, through the SDK -----------------------------------------------------------------------
@pytest.mark.parametrize(("url", "reason"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
async def test_the_sdk_refuses_every_inside_source(url, reason, listener, site, connects):
    policy = FetchPolicy().allowing(sf.host_port(site.url))  # the redirecting site only
    before, temp_files = len(site.paths), set(glob.glob(f"{tempfile.gettempdir()}/pixsim-src-*"))
    with pytest.raises(SourceRejected) as caught:
        await resolve_source(_url(url, listener, site), "user-1", ".png", param="image_url", policy=policy)
    assert set(glob.glob(f"{tempfile.gettempdir()}/pixsim-src-*")) <= temp_files  # no file left behind
    error = caught.value
    assert error.error_code == "param_invalid" and error.retryable is False
    assert str(error).startswith("image_url: ") and reason in str(error), str(error)
    _nothing_reached(listener, connects, site.server_address[1])
    assert len(site.paths) - before == (1 if "{site}" in url else 0)  # only the first hop of a redirect


# -- the table, through the whole pipeline --------------------------------------------------------------
async def _fails_with_param_invalid(
    api: Any, params: dict[str, Any], reason: str, **body: Any
) -> dict[str, Any]:
    created = await create(
        api, {"prompt": "animate", "duration": 1, **params}, operation="image_to_video", **body
    )
    done = await wait_for(api, created["id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "param_invalid", done["error"]
    assert done["error"]["message"].startswith("image_url: ") and reason in done["error"]["message"], done[
        "error"
    ]
    assert done["credits"]["reserved"] == {} and not done.get("provider_job_id"), done
    return done


@pytest.mark.system
@pytest.mark.parametrize(
    ("url", "reason"), [row[1:] for row in PIPELINE_TABLE], ids=[row[0] for row in PIPELINE_TABLE]
)
async def test_the_pipeline_fails_the_job_for_every_inside_source(
    pipeline, url, reason, listener, site, connects
):
    uploads = len(pipeline.fake.uploads)
    await _fails_with_param_invalid(pipeline.api, {"image_url": _url(url, listener, site)}, reason)
    _nothing_reached(listener, connects)
    assert len(pipeline.fake.uploads) == uploads  # nothing went on to the provider


@pytest.mark.system
async def test_a_missing_image_on_an_allowed_host_fails_with_param_invalid_not_outcome_unknown(pipeline):
    done = await _fails_with_param_invalid(
        pipeline.api,
        {"image_url": f"{pipeline.fake.url}/v1/files/missing.png"},
        "the source answered HTTP 404",
    )
    assert done["error"]["code"] != "submit_outcome_unknown"


# -- a system whose allow-list holds `Site`: redirects, size, deadline, accounts ------------------------
@pytest.fixture(scope="module")
async def system(site: Site) -> AsyncIterator[Any]:
    """The services with the account-based `acct` provider (the sim adapter, credentials required), a size
    cap of MAX_BYTES, a DEADLINE_S fetch deadline and `Site` allow-listed; its own NATS and MongoDB."""
    fake = AccountsFake(latency=0.3)
    fake.start("127.0.0.1", 0)
    try:
        with own_servers() as servers:
            async with running(
                servers,
                fake,
                db="ssrf",
                PIXSIM_FETCH_ALLOW_HOSTS=sf.host_port(site.url),
                PIXSIM_FETCH_MAX_BYTES=MAX_BYTES,
                PIXSIM_FETCH_TIMEOUT=DEADLINE_S,
            ) as running_system:
                yield running_system
    finally:
        fake.stop()


@pytest.fixture
async def account(system: Any) -> AsyncIterator[str]:
    """A fresh account with 10 credits and one slot; disabled afterwards, so every test gets its own."""
    view = await system.account(f"tok-{time.monotonic_ns()}", credits={"sim": 10}, concurrency_limit=1)
    await system.wait_account(view["id"], _holds_nothing)  # the opening credits are booked
    yield view["id"]
    await system.api.patch(f"/api/v1/accounts/{view['id']}", json={"enabled": False})


def _holds_nothing(view: dict[str, Any]) -> bool:
    sim = view["balances"].get("sim") or {}
    return view["slots_in_use"] == 0 and sim.get("available") == sim.get("balance") == 10


async def _slot_and_hold_came_back(system: Any, account_id: str) -> None:
    await system.wait_account(account_id, _holds_nothing, timeout=10)
    doc = await system.db["accounts"].find_one({"_id": account_id})
    assert doc["slots_used"] == 0 and doc["available"] == {"sim": 10} and not doc.get("leases"), doc


async def _account_job_fails(system: Any, account_id: str, image_url: str, reason: str) -> dict[str, Any]:
    done = await _fails_with_param_invalid(system.api, {"image_url": image_url}, reason, provider_id="acct")
    record = await system.db["dispatches"].find_one({"_id": done["id"]})
    assert record["state"] == "decided" and not record["submitted"], record
    await _slot_and_hold_came_back(system, account_id)
    return done


@pytest.mark.system
@pytest.mark.parametrize(("url", "reason"), [row[1:] for row in REDIRECTS], ids=[row[0] for row in REDIRECTS])
async def test_an_allowed_host_that_redirects_inside_is_refused_at_the_hop(
    system, account, site, url, reason, listener, connects
):
    await _account_job_fails(system, account, _url(url, listener, site), reason)
    _nothing_reached(listener, connects, site.server_address[1])


@pytest.mark.system
@pytest.mark.parametrize(("path", "reason"), [
    ("/missing.png", "the source answered HTTP 404"),
    ("/page.html", "the source is text/html, not image"),
    ("/big.png", f"over the {MAX_BYTES} byte limit"),
    ("/endless.png", f"over the {MAX_BYTES} byte limit"),
])  # fmt: skip
async def test_a_bad_source_ends_the_job_and_returns_the_slot_and_the_hold(
    system, account, site, path, reason
):
    await _account_job_fails(system, account, site.url + path, reason)


@pytest.mark.system
async def test_an_unsupported_scheme_ends_the_job_and_returns_the_slot_and_the_hold(system, account):
    await _account_job_fails(system, account, "file:///etc/passwd", "a file: URL is not accepted")


@pytest.mark.system
async def test_a_source_trickling_a_byte_every_half_second_is_cut_at_the_deadline(system, account, site):
    started = time.monotonic()
    job = asyncio.create_task(
        _account_job_fails(system, account, f"{site.url}/slow.png", f"within the {DEADLINE_S:g} s deadline")
    )
    await system.wait_account(account, lambda view: view["slots_in_use"] == 1)  # held while it fetches...
    assert (await system.get(account))["balances"]["sim"]["available"] < 10
    await job  # ...and given back when the deadline cuts it
    assert time.monotonic() - started < DEADLINE_S + 4  # not 50 s: the deadline is for the whole fetch


async def test_the_sdk_cuts_a_trickling_source_at_the_deadline(site):
    policy = FetchPolicy(timeout_s=DEADLINE_S).allowing(sf.host_port(site.url))
    started = time.monotonic()
    with pytest.raises(SourceRejected, match=r"image_url: the source did not arrive within the 2 s deadline"):
        await resolve_source(f"{site.url}/slow.png", None, ".png", param="image_url", policy=policy)
    assert DEADLINE_S <= time.monotonic() - started < DEADLINE_S + 1.5


async def test_the_sdk_enforces_the_size_cap_the_content_type_and_the_redirect_limit(site):
    policy = FetchPolicy(max_bytes=MAX_BYTES).allowing(sf.host_port(site.url))
    for path, reason in (
        ("/big.png", "over the 65536 byte limit"),
        ("/endless.png", "over the 65536 byte limit"),
        ("/page.html", "the source is text/html, not image"),
    ):
        with pytest.raises(SourceRejected, match=f"image_url: .*{reason}"):
            await resolve_source(site.url + path, None, ".png", param="image_url", policy=policy)
    with pytest.raises(SourceRejected, match="video_url: the source is image/png, not video"):
        await resolve_source(site.url + "/a.png", None, ".mp4", param="video_url", policy=policy)
    hops = "/a.png"
    for _ in range(3):
        hops = f"/redirect?to={quote(hops)}"
    path, temps = await resolve_source(site.url + hops, None, ".png", policy=policy)
    assert Path(path).read_bytes() == PNG and temps == [
        path
    ]  # three redirects within an allowed site are fine
    Path(path).unlink()
    with pytest.raises(SourceRejected, match="source: more than 3 redirects"):
        await resolve_source(f"{site.url}/redirect?to={quote(hops)}", None, ".png", policy=policy)


class _BrokenPlugin(AcctProvider):
    async def prepare_execution_params(self, generation: Any, mapped: dict, resolve_source_fn: Any) -> dict:
        return {**mapped, "size": mapped["missing"]}  # a plugin's bug: KeyError


def _broken_registry(fake_url: str) -> Registry:
    provider = _BrokenPlugin(config={"base_url": fake_url})
    provider.attach_manifest(kit.MANIFEST)
    return Registry([LoadedProvider(kit.MANIFEST, provider, "tests/security (broken)")])


@pytest.mark.system
async def test_a_provider_bug_in_preparation_fails_the_job_instead_of_outcome_unknown(
    fresh_servers, site, monkeypatch
):
    monkeypatch.setattr(kit, "registry", _broken_registry)
    fake = AccountsFake(latency=0.3)
    fake.start("127.0.0.1", 0)
    try:
        async with running(fresh_servers, fake, db="ssrf_bug") as broken:
            account_id = (await broken.account("tok-bug", credits={"sim": 10}, concurrency_limit=1))["id"]
            await broken.wait_account(account_id, _holds_nothing)
            created = await create(
                broken.api,
                {"prompt": "x", "duration": 1, "image_url": f"{site.url}/a.png"},
                provider="acct",
                operation="image_to_video",
            )
            done = await wait_for(broken.api, created["id"])
            assert done["status"] == "failed" and done["error"]["code"] == "param_invalid", done
            assert "KeyError" in done["error"]["message"] and "missing" in done["error"]["message"]
            await _slot_and_hold_came_back(broken, account_id)
    finally:
        fake.stop()


@pytest.mark.system
async def test_a_good_source_still_runs_on_the_account(system, account, site):
    created = await create(
        system.api,
        {"prompt": "x", "duration": 1, "image_url": f"{site.url}/a.png"},
        provider="acct",
        operation="image_to_video",
    )
    done = await wait_for(system.api, created["id"])
    assert done["status"] == "completed" and done["account_id"] == account, done
