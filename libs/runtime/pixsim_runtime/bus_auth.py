"""Who may do what on NATS: every NATS user's publish and subscribe allow-lists, defined once.

The same definition renders the server's `authorization` block (`server_authorization`, used by
`local_servers.start_nats` for `make run`, the tests and the bench, and checked against
`deploy/k8s/base/nats.yaml`) and each client's credentials (`BusCredentials`: one random password per
user, a file per user, kept under `.pixsim/` or the test's temporary directory). Nobody connects
anonymously: the server has no `no_auth_user`.

| user | may publish | may read |
|---|---|---|
| gateway, dispatcher, poller, billing | the events it emits, its own dead letters | its own durable consumers; the gateway also a generation's history (SSE) |
| setup | nothing but the JetStream API | declares and updates the streams and every durable consumer |
| upstream | `pixsim.generations.*.requested` only | the generations stream (ordered consumers, core subscriptions) |
| admin | everything | everything (operators and the tests' own instrumentation) |

Every client gets its own reply inbox (`_INBOX.<user>.`), so no user can read another's replies, and
JetStream API subjects name the stream and the durable, so a service acks, fetches and creates only its
own consumers. Users that may create ephemeral consumers are denied the services' durable names.
Run `python -m pixsim_runtime.bus_auth --help` for the Kubernetes renderings.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pixsim_contracts import TERMINAL_GENERATION_EVENTS, subjects

GENERATIONS = subjects.GENERATIONS_STREAM
CREDITS = subjects.CREDITS_STREAM
ACCOUNTS = subjects.ACCOUNTS_STREAM
STREAMS = tuple(subjects.STREAM_SUBJECTS)

SERVICES = ("gateway", "dispatcher", "poller", "billing")
USERS = (*SERVICES, "setup", "upstream", "admin")

#: The durable consumers each service owns, (stream, durable). A test checks these are exactly the
#: subscribers the services register, so a new subscriber cannot silently lack its permissions.
DURABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "gateway": (
        (GENERATIONS, "gateway-generations"),
        (CREDITS, "gateway-credits"),
        (GENERATIONS, "gateway-archiver"),
        (GENERATIONS, "gateway-webhooks"),
    ),
    "dispatcher": (
        (GENERATIONS, "dispatcher"),
        *((GENERATIONS, f"dispatcher-slots-{end}") for end in TERMINAL_GENERATION_EVENTS),
    ),
    "poller": ((GENERATIONS, "poller"), (GENERATIONS, "poller-cancels")),
    "billing": ((CREDITS, "billing"),),
}

# Account events are recorded through an outbox that any service writing the account may flush
# (pixsim_runtime.accounts.record), so every service that records one may publish all three.
_RECORDED = tuple(subjects.account_events(e) for e in ("created", "updated", "status_changed"))

#: The event subjects each service emits (its dead letters are added below).
EMITS: dict[str, tuple[str, ...]] = {
    "gateway": (
        subjects.generation_events("requested"),
        subjects.generation_events("cancel_requested"),
        subjects.credit_events("granted"),
        subjects.credit_events("synced"),
        *_RECORDED,
        subjects.account_events("deleted"),
    ),
    "dispatcher": (
        *(subjects.generation_events(e) for e in ("submitted", "failed", "filtered")),
        subjects.credit_events("reserved"),
        *_RECORDED,
    ),
    "poller": (
        *(subjects.generation_events(e) for e in ("progressed", *TERMINAL_GENERATION_EVENTS)),
        subjects.credit_events("charged"),
        subjects.credit_events("released"),
        *_RECORDED,
    ),
    "billing": (*_RECORDED, subjects.account_events("credits_low"), subjects.account_events("exhausted")),
}

#: What the README tells upstream systems they may publish.
UPSTREAM_PUBLISHES = (subjects.generation_events("requested"),)


@dataclass(frozen=True)
class Permissions:
    """One user's allow-lists (NATS subjects with wildcards) and the exceptions to them."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()

    def conf(self) -> str:
        """The `permissions` map of a user in nats-server's configuration syntax."""
        lines = [
            "{",
            f"  publish: {{ allow: {_list(self.publish)}"
            + (f", deny: {_list(self.deny_publish)}" if self.deny_publish else "")
            + " }",
            f"  subscribe: {{ allow: {_list(self.subscribe)} }}",
            "}",
        ]
        return "\n".join(lines)


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def inbox_prefix(user: str) -> str:
    """The reply-inbox prefix of a user: it may subscribe only under its own."""
    return f"_INBOX.{user}"


def _js(*parts: str) -> str:
    return ".".join(("$JS.API", *parts))


def _durable(stream: str, durable: str) -> list[str]:
    """What a service needs to create, bind, fetch from and ack one durable pull consumer."""
    return [
        _js("CONSUMER.INFO", stream, durable),
        _js("CONSUMER.CREATE", stream, durable),
        _js("CONSUMER.CREATE", stream, durable, ">"),
        _js("CONSUMER.MSG.NEXT", stream, durable),
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _ephemeral(stream: str) -> list[str]:
    """Consumers of one's own on a stream, created under a name in the subject (nats-py: `pull_subscribe`
    without a durable, or `add_consumer` with a `name`), to replay a history and follow it live.

    Never the name-less `CONSUMER.CREATE.<stream>` (nats-py's ordered consumers): there the name travels
    in the body, and a client could re-configure another service's durable under its name. With the name
    in the subject, `_not_durables` can deny the services' durable names."""
    return [
        _js("CONSUMER.CREATE", stream, "*", ">"),
        _js("CONSUMER.INFO", stream, "*"),
        _js("CONSUMER.MSG.NEXT", stream, "*"),
        _js("CONSUMER.DELETE", stream, "*"),
        f"$JS.ACK.{stream}.*.>",
        _js("STREAM.NAMES"),
    ]


def _not_durables(owner: str | None) -> tuple[str, ...]:
    """Deny creating, reading from, acking on or deleting a consumer under another service's durable name."""
    out: list[str] = []
    for service, owned in DURABLES.items():
        if service == owner:
            continue
        for stream, durable in owned:
            out += [
                _js("CONSUMER.CREATE", stream, durable),
                _js("CONSUMER.CREATE", stream, durable, ">"),
                _js("CONSUMER.MSG.NEXT", stream, durable),
                _js("CONSUMER.DELETE", stream, durable),
                f"$JS.ACK.{stream}.{durable}.>",
            ]
    return tuple(out)


def _service(name: str) -> Permissions:
    publish = [*EMITS[name], subjects.dlq(name)]
    # Every service checks the streams exist at start-up and may create a missing one (never update it).
    publish += [_js("STREAM.INFO", s) for s in STREAMS] + [_js("STREAM.CREATE", s) for s in STREAMS]
    for stream, durable in DURABLES[name]:
        publish += _durable(stream, durable)
    deny: tuple[str, ...] = ()
    if name == "gateway":  # SSE: one generation's events, from the start, then live
        publish += _ephemeral(GENERATIONS)
        deny = _not_durables(name)
    return Permissions(tuple(publish), (f"{inbox_prefix(name)}.>",), deny)


def permissions() -> dict[str, Permissions]:
    """Every NATS user and what it may do."""
    users = {name: _service(name) for name in SERVICES}
    users["setup"] = Permissions(
        (
            *(_js(op, s) for s in STREAMS for op in ("STREAM.INFO", "STREAM.CREATE", "STREAM.UPDATE")),
            *(_js("CONSUMER.INFO", s, "*") for s in STREAMS),
            *(_js("CONSUMER.CREATE", s, ">") for s in STREAMS),
        ),
        (f"{inbox_prefix('setup')}.>",),
    )
    users["upstream"] = Permissions(
        (*UPSTREAM_PUBLISHES, *_ephemeral(GENERATIONS), _js("STREAM.INFO", GENERATIONS)),
        (subjects.GENERATION_SUBJECTS, f"{inbox_prefix('upstream')}.>"),
        _not_durables(None),
    )
    users["admin"] = Permissions((">",), (">",))
    return users


def server_authorization(password_of: Callable[[str], str]) -> str:
    """nats-server's `authorization` block for every user; `password_of(user)` is a literal password or a
    `$VARIABLE` reference (nats-server then reads it from its environment)."""
    entries = []
    for user, perms in permissions().items():
        password = password_of(user)
        rendered = password if password.startswith("$") else f'"{password}"'
        body = perms.conf().replace("\n", "\n    ")
        entries.append(f'  {{\n    user: "{user}"\n    password: {rendered}\n    permissions: {body}\n  }}')
    return (
        "# Rendered by pixsim_runtime.bus_auth: do not edit by hand.\n"
        "authorization {\n  users: [\n" + "\n".join(entries) + "\n  ]\n}\n"
    )


def k8s_authorization() -> str:
    """The block `deploy/k8s/base/nats.yaml` carries: passwords come from the NATS pods' environment,
    which the Secret `pixsim-nats` fills."""
    return server_authorization(lambda user: f"${password_variable(user)}")


def password_variable(user: str) -> str:
    """The environment variable a Kubernetes NATS pod reads a user's password from."""
    return f"NATS_PASSWORD_{user.upper()}"


@dataclass
class BusCredentials:
    """One password per NATS user, a file per user (named after it) in `directory`.

    A service reads only its own file (`PIXSIM_NATS_CREDENTIALS_DIR` + its user); in Kubernetes each pod
    gets only its own password, from the Secret `pixsim-nats`.
    """

    directory: Path
    passwords: dict[str, str] = field(repr=False)

    @classmethod
    def ensure(cls, directory: str | os.PathLike[str]) -> BusCredentials:
        """Read the passwords in `directory`, creating a random one for each user that has none."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        passwords = {}
        for user in USERS:
            file = path / user
            if not file.exists():
                fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(24))
            passwords[user] = file.read_text().strip()
        return cls(path, passwords)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> BusCredentials:
        """The passwords already in `directory` (for a server someone else started); creates nothing."""
        path = Path(directory)
        return cls(path, {user: pw for user in USERS if (pw := read_password(path, user)) is not None})

    def password(self, user: str) -> str:
        return self.passwords[user]

    def connect_options(self, user: str) -> dict[str, str]:
        """Keyword arguments for `nats.connect` as `user`."""
        return {"user": user, "password": self.passwords[user], "inbox_prefix": inbox_prefix(user)}

    def url(self, base_url: str, user: str) -> str:
        """`base_url` with the user's credentials in it (passwords are URL-safe by construction)."""
        return with_credentials(base_url, user, self.passwords[user])


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def read_password(directory: str | os.PathLike[str], user: str) -> str | None:
    """The user's password from a credentials directory, or None if it holds none."""
    file = Path(directory) / user
    return file.read_text().strip() if file.is_file() else None


def _k8s_secret(namespace: str) -> str:
    """A Secret manifest with a fresh random password per user (pipe it to `kubectl apply -f -`)."""
    lines = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        "  name: pixsim-nats",
        f"  namespace: {namespace}",
        "type: Opaque",
        "stringData:",
    ]
    lines += [f"  {user}: {secrets.token_urlsafe(24)}" for user in USERS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PixSim's NATS users and permissions.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("auth-conf", help="the authorization block with $NATS_PASSWORD_<USER> references (k8s)")
    secret = sub.add_parser("k8s-secret", help="a Secret `pixsim-nats` with fresh random passwords")
    secret.add_argument("--namespace", "-n", default="pixsim")
    local = sub.add_parser(
        "server-conf",
        help="create (or read) a credentials directory and print the "
        "authorization block with its passwords, for your own nats-server",
    )
    local.add_argument("directory")
    args = parser.parse_args(argv)
    if args.command == "auth-conf":
        sys.stdout.write(k8s_authorization())
    elif args.command == "k8s-secret":
        sys.stdout.write(_k8s_secret(args.namespace))
    else:
        sys.stdout.write(server_authorization(BusCredentials.ensure(args.directory).password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
