"""`pixsim_provider_sdk.safe_fetch` piece by piece: which addresses are public, the allow-list, and that
the fetcher connects to the address it checked, over http and https (SNI and certificate by name).
The SSRF table itself, through the SDK and the whole pipeline, is tests/security/test_ssrf.py."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pixsim_provider_sdk import FetchPolicy, SourceRejected
from pixsim_provider_sdk import safe_fetch as sf
from pixsim_provider_sdk.files import expected_family, resolve_source

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("10.0.0.1", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.0.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("fec0::1", "private"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "private|reserved"),
    ("169.254.169.254", "metadata"), ("169.254.170.2", "metadata"), ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "metadata"),
    ("::127.0.0.1", "loopback"), ("64:ff9b::7f00:1", "loopback"), ("64:ff9b::a9fe:a9fe", "metadata"),
    ("2002:7f00:1::", "loopback"), ("2002:a00:1::", "private"), ("64:ff9b:1::1", "private"),
    ("192.0.2.1", "private|reserved"), ("2001:db8::1", "private|reserved"),
])  # fmt: skip
def test_every_kind_of_inside_address_is_refused(address, why):
    problem = sf.address_problem(ipaddress.ip_address(address))
    assert problem is not None and any(word in problem for word in why.split("|")), (address, problem)


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"],
)
def test_public_addresses_pass(address):
    assert sf.address_problem(ipaddress.ip_address(address)) is None


def test_allow_list_entries_are_hosts_or_host_ports():
    entries = sf.parse_allow_hosts(
        "127.0.0.1:8100, Fake.Local  [::1]:9000,::2,http://cdn.test:81,media.test."
    )
    assert entries == {
        ("127.0.0.1", 8100),
        ("fake.local", None),
        ("::1", 9000),
        ("::2", None),
        ("cdn.test", 81),
        ("media.test", None),
    }
    policy = FetchPolicy(allow_hosts=entries)
    assert policy.allows("127.0.0.1", 8100) and not policy.allows("127.0.0.1", 8101)  # one port, not all
    assert (
        policy.allows("FAKE.local.", 1234) and policy.allows("[::1]", 9000) and not policy.allows("::1", 80)
    )
    with pytest.raises(ValueError, match="PIXSIM_FETCH_ALLOW_HOSTS"):
        sf.parse_allow_hosts("host:port")
    assert sf.host_port("http://127.0.0.1:8100/x") == "127.0.0.1:8100"
    assert sf.host_port("https://[::1]/") == "[::1]:443"


def test_the_policy_is_read_from_the_environment_when_asked(monkeypatch):
    monkeypatch.setenv(sf.ALLOW_HOSTS_ENV, "fake.local:81")
    monkeypatch.setenv(sf.MAX_BYTES_ENV, "1000")
    monkeypatch.setenv(sf.TIMEOUT_ENV, "2.5")
    assert FetchPolicy.from_env() == FetchPolicy(frozenset({("fake.local", 81)}), 1000, 2.5)
    env: dict[str, str] = {}
    sf.allow_in_env("http://127.0.0.1:8100", env)
    sf.allow_in_env("http://127.0.0.1:8101/files", env)
    assert env == {sf.ALLOW_HOSTS_ENV: "127.0.0.1:8100,127.0.0.1:8101"}


def test_the_expected_media_family_comes_from_the_param_then_the_suffix():
    assert expected_family("image_url", ".bin") == "image" and expected_family("mask_url", ".bin") == "image"
    assert expected_family("video_url", ".png") == "video" and expected_family("source", ".mp4") == "video"
    assert expected_family("source", ".png") == "image" and expected_family("source", ".bin") is None


# -- connecting to the checked address, http and https -----------------------------------------------
def _tls_files(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A CA and a server certificate for `name`: (the server's context, a client context trusting the CA)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


class _Seen(ThreadingHTTPServer):
    daemon_threads = True
    hosts: list[str]
    sni: list[str | None]


class _Image(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hosts.append(self.headers["Host"])  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args: object) -> None:
        pass


def _serve(tls: ssl.SSLContext | None) -> _Seen:
    server = _Seen(("127.0.0.1", 0), _Image)
    server.hosts, server.sni = [], []
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: server.sni.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def dns(monkeypatch) -> Iterator[dict[str, list[str]]]:
    """Names only this test's DNS knows: the system resolver would fail on them, so a fetch that works
    proves the request went to the address safe_fetch resolved and checked, not to a second lookup."""
    names: dict[str, list[str]] = {}
    real = sf.resolve

    async def resolve(host: str, port: int) -> list[str]:
        return names[host] if host in names else await real(host, port)

    monkeypatch.setattr(sf, "resolve", resolve)
    yield names


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_it_connects_to_the_checked_address_with_the_name_in_host_and_sni(scheme, dns, tmp_path):
    tls, trust = _tls_files(tmp_path, "media.test") if scheme == "https" else (None, True)
    server = _serve(tls)
    port = server.server_address[1]
    dns["media.test"] = ["127.0.0.1"]
    policy = FetchPolicy(verify=trust).allowing(f"media.test:{port}")
    try:
        path, _ = await resolve_source(
            f"{scheme}://media.test:{port}/a.png", None, ".png", param="image_url", policy=policy
        )
        assert Path(path).read_bytes() == PNG and path.endswith(".png")
        Path(path).unlink()
        assert server.hosts == [f"media.test:{port}"]
        if scheme == "https":
            assert server.sni == ["media.test"]  # the certificate was checked against the name, not the IP
            dns["ip.test"] = ["127.0.0.1"]  # the same server under a name its certificate does not carry
            with pytest.raises(SourceRejected, match=r"image_url: cannot fetch from ip\.test"):
                await resolve_source(
                    f"https://ip.test:{port}/a.png",
                    None,
                    ".png",
                    param="image_url",
                    policy=policy.allowing(f"ip.test:{port}"),
                )
    finally:
        server.shutdown()
        server.server_close()


async def test_an_allow_listed_name_is_still_checked_for_cloud_metadata(dns):
    dns["cdn.test"] = ["169.254.169.254"]
    with pytest.raises(SourceRejected, match="cdn.test resolves to a cloud metadata address"):
        await resolve_source("http://cdn.test/a.png", None, ".png", policy=FetchPolicy().allowing("cdn.test"))


async def test_a_name_that_does_not_resolve_is_refused(dns):
    with pytest.raises(SourceRejected, match=r"source: cannot resolve the host nowhere\.invalid") as caught:
        await resolve_source("http://nowhere.invalid/a.png", None, ".png")
    assert caught.value.error_code == "param_invalid" and caught.value.retryable is False


async def test_credentials_and_queries_never_appear_in_the_message():
    for url in ("http://user:s3cret@127.0.0.1/a.png?sig=s3cret", "ftp://user:s3cret@example.com/?s3cret"):
        with pytest.raises(SourceRejected) as caught:
            await resolve_source(url, None, ".png", param="image_url")
        assert "s3cret" not in str(caught.value) and str(caught.value).startswith("image_url: ")
    with pytest.raises(SourceRejected, match="image_url: must be a URL, not list"):
        await resolve_source(["http://example.com/a.png"], None, ".png", param="image_url")  # type: ignore[arg-type]


def test_make_run_allows_exactly_the_fakes_it_starts(monkeypatch):
    from conftest import PROVIDERS
    from pixsim_runtime import dev

    monkeypatch.setattr(dev.subprocess, "Popen", lambda *args, **kwargs: None)  # start nothing
    env = {sf.ALLOW_HOSTS_ENV: "cdn.example:443", "PIXSIM_SORA_BASE_URL": "https://api.openai.com"}
    dev._start_fakes(PROVIDERS, env, [], first_port=8100)
    fakes = sorted(v for k, v in env.items() if k.endswith("_BASE_URL") and k != "PIXSIM_SORA_BASE_URL")
    assert fakes and env[sf.ALLOW_HOSTS_ENV].split(",") == [
        "cdn.example:443",
        *(sf.host_port(u) for u in fakes),
    ]
