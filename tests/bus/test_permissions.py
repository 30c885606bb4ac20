"""NATS authorization against a real nats-server: every user may do what `bus_auth` lists and nothing else."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nats
import pytest
from bus.kit import Bus, connect, last_seq, own_servers, publish_raw, requested, running, wait_refused
from conftest import REPO
from pixsim_contracts import ALL_EVENT_TYPES, subjects
from pixsim_runtime.bus_auth import (
    DURABLES,
    EMITS,
    SERVICES,
    USERS,
    k8s_authorization,
    password_variable,
    permissions,
)
from pixsim_runtime.local_servers import free_port
from support import wait_for

pytestmark = pytest.mark.system


def subject_of(event_type: type) -> str:
    """A concrete subject of an event type."""
    family, kind = event_type.model_fields["type"].default.split(".", 1)  # type: ignore[attr-defined]
    return {
        "generation": subjects.generation("g-perm", kind),
        "credits": subjects.credits("sim", kind),
        "account": subjects.account("acc-perm", kind),
    }[family]


EVENT_SUBJECTS = sorted(subject_of(t) for t in ALL_EVENT_TYPES)


def matches(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or token not in ("*", have[i]):
            return False
    return len(want) == len(have)


def may_publish(user: str, subject: str) -> bool:
    perms = permissions()[user]
    return any(matches(p, subject) for p in perms.publish) and not any(
        matches(p, subject) for p in perms.deny_publish
    )


@pytest.fixture(scope="module")
async def bus(sim_fake) -> Bus:
    async with own_servers() as servers, running(servers, db="permissions") as bus:
        yield bus


@pytest.mark.parametrize("user", [*SERVICES, "upstream"])
async def test_a_user_publishes_exactly_the_event_subjects_it_is_allowed(bus: Bus, user: str) -> None:
    errors: list[str] = []
    nc = await bus.connect(user, errors=errors)
    try:
        allowed = [s for s in EVENT_SUBJECTS if may_publish(user, s)]
        refused = [s for s in EVENT_SUBJECTS if not may_publish(user, s)]
        assert allowed and refused
        for subject in refused:
            stream = subjects.stream_of(subject)
            before = await last_seq(bus.admin, stream)
            await nc.publish(subject, b"{}")  # a core publish: the server refuses it and says so
            await nc.flush()
            await wait_refused(errors, subject)
            assert await last_seq(bus.admin, stream) == before, f"{user} got {subject} into {stream}"
        for subject in allowed:  # accepted: JetStream acks it (the consumers dead-letter the empty body)
            ack = await nc.jetstream().publish(subject, b"{}", timeout=5)
            assert ack.stream == subjects.stream_of(subject)
        assert not [e for e in errors if any(f'"{s.lower()}"' in e.lower() for s in allowed)]
    finally:
        await nc.close()


async def test_each_service_publishes_only_what_it_emits(bus: Bus) -> None:
    # The allowed event subjects are the ones bus_auth lists for the service, no more (checked above on
    # the server) and no fewer than the service's code publishes (read from its source, like docs/).
    sys.path.insert(0, str(REPO / "docs"))
    try:
        from publishers import published_events
    finally:
        sys.path.pop(0)
    names = {t.__name__: t for t in ALL_EVENT_TYPES}
    for service in SERVICES:
        for name in published_events(REPO / "services" / service / f"pixsim_{service}", set(names)):
            assert may_publish(service, subject_of(names[name])), f"{service} publishes {name} but may not"
        assert may_publish(service, subjects.dlq(service))
        assert not may_publish(service, subjects.dlq("someone-else"))


@pytest.mark.parametrize("user", [*SERVICES, "upstream", "setup"])
async def test_reading_outside_the_allow_list_is_refused(bus: Bus, user: str) -> None:
    errors: list[str] = []
    nc = await bus.connect(user, errors=errors)
    try:
        for subject in (
            "pixsim.>",
            "pixsim.credits.>",
            "pixsim.accounts.>",
            "pixsim.dlq.>",
            "_INBOX.>",
            "_INBOX.billing.>" if user != "billing" else "_INBOX.gateway.>",
            "$JS.>",
        ):
            await nc.subscribe(subject)
            await nc.flush()
            await wait_refused(errors, subject)
        # another service's durable: neither fetch from it, nor delete it, nor (but `setup`) re-configure it
        for stream, durable in DURABLES["dispatcher" if user != "dispatcher" else "poller"]:
            apis = [
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                f"$JS.API.CONSUMER.DELETE.{stream}.{durable}",
            ]
            if user != "setup":
                apis.append(f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.pixsim.generations.x.*")
            for api in apis:
                await nc.publish(api, b"{}")
                await nc.flush()
                await wait_refused(errors, api)
        # nobody but `setup` (and operators) changes or removes a stream
        for api in ("STREAM.UPDATE", "STREAM.DELETE", "STREAM.PURGE"):
            subject = f"$JS.API.{api}.{subjects.CREDITS_STREAM}"
            if user == "setup" and api == "STREAM.UPDATE":
                continue
            await nc.publish(subject, b"{}")
            await nc.flush()
            await wait_refused(errors, subject)
    finally:
        await nc.close()


async def test_upstream_cannot_forge_credits_accounts_or_outcomes(bus: Bus) -> None:
    errors: list[str] = []
    nc = await bus.connect("upstream", errors=errors)
    try:
        for subject in (
            subjects.credits("sim", "charged"),
            subjects.credits("sim", "granted"),
            subjects.credits("sim", "synced"),
            subjects.account("acc-x", "created"),
            subjects.account("acc-x", "status_changed"),
            subjects.generation("g-x", "completed"),
            subjects.generation("g-x", "submitted"),
            subjects.generation("g-x", "cancel_requested"),
            subjects.dlq("gateway"),
        ):
            before = await last_seq(bus.admin, subjects.stream_of(subject))
            with pytest.raises(nats.errors.Error):  # through JetStream: no ack ever comes
                await nc.jetstream().publish(subject, b"{}", timeout=0.5)
            await wait_refused(errors, subject)
            assert await last_seq(bus.admin, subjects.stream_of(subject)) == before
        # ... and cannot take over a service's consumer under its durable name
        for subject in (
            "$JS.API.CONSUMER.CREATE.PIXSIM_GENERATIONS.dispatcher.pixsim.generations.*.requested",
            "$JS.API.CONSUMER.CREATE.PIXSIM_GENERATIONS",
        ):
            await nc.publish(
                subject,
                json.dumps(
                    {
                        "stream_name": "PIXSIM_GENERATIONS",
                        "config": {
                            "name": "dispatcher",
                            "filter_subject": "pixsim.generations.x.*",
                            "ack_policy": "explicit",
                        },
                    }
                ).encode(),
            )
            await nc.flush()
            await wait_refused(errors, subject)
        info = await bus.admin.jetstream().consumer_info(subjects.GENERATIONS_STREAM, "dispatcher")
        assert info.config.filter_subject == subjects.generation_events("requested")
    finally:
        await nc.close()


async def test_upstream_starts_a_generation_that_completes_and_may_follow_it(bus: Bus) -> None:
    event = requested()
    nc = await bus.connect("upstream")
    try:
        js = nc.jetstream()
        live = await nc.subscribe(
            subjects.generation(event.generation_id)
        )  # a core subscription: live events
        ack = await js.publish(
            event.subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.generation_id}
        )
        assert not ack.duplicate
        done = await wait_for(bus.api, event.generation_id)
        assert done["status"] == "completed"
        assert (await live.next_msg(timeout=5)).subject == event.subject
        # the history, replayed through a consumer of its own (pull, named: nats-py's default)
        history = await js.pull_subscribe(
            subjects.generation(event.generation_id), stream=subjects.GENERATIONS_STREAM
        )
        kinds = [m.subject.rsplit(".", 1)[1] for m in await history.fetch(10, timeout=5)]
        assert kinds[0] == "requested" and kinds[-1] == "completed"
    finally:
        await nc.close()


@pytest.mark.parametrize("user", [None, "upstream", "gateway", "admin"])
async def test_anonymous_or_wrong_password_connections_are_refused(bus: Bus, user: str | None) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(bus.servers, user, password=None if user is None else "not-the-password")


async def test_publishes_of_a_valid_event_outside_ones_list_change_nothing(bus: Bus) -> None:
    """The gateway may publish `requested` but not the dispatcher's `submitted`; billing not even that."""
    errors: list[str] = []
    nc = await bus.connect("billing", errors=errors)
    try:
        event = requested()
        await nc.publish(event.subject, event.model_dump_json().encode())
        await nc.flush()
        await wait_refused(errors, event.subject)
        assert (await bus.api.get(f"/api/v1/generations/{event.generation_id}")).status_code == 404
    finally:
        await nc.close()
    ok = requested()
    nc = await bus.connect("gateway")
    try:
        await publish_raw(nc, ok.subject, ok.model_dump_json().encode(), ok.generation_id)
    finally:
        await nc.close()
    assert (await wait_for(bus.api, ok.generation_id))["status"] == "completed"


def test_the_definition_covers_every_subscriber_of_every_service() -> None:
    from importlib import util

    spec = util.spec_from_file_location(
        "pixsim_test_jetstream_setup", REPO / "deploy/image/jetstream_setup.py"
    )
    setup = util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = setup  # type: ignore[union-attr]
    spec.loader.exec_module(setup)  # type: ignore[union-attr]
    plan = {(c.service, c.stream, c.name) for c in setup.consumer_plan()}
    defined = {(service, stream, durable) for service, owned in DURABLES.items() for stream, durable in owned}
    assert plan == defined
    assert set(EMITS) == set(SERVICES) and set(USERS) == {*SERVICES, "setup", "upstream", "admin"}


def test_kubernetes_renders_the_same_permissions(tmp_path: Path) -> None:
    """deploy/k8s/base/nats.yaml carries bus_auth's authorization, and a real nats-server accepts it with
    the passwords in its environment (as the Secret pixsim-nats provides them)."""
    import yaml

    docs = list(yaml.safe_load_all((REPO / "deploy/k8s/base/nats.yaml").read_text()))
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nats-config")[
        "data"
    ]
    assert config["auth.conf"] == k8s_authorization(), (
        "deploy/k8s/base/nats.yaml is stale: paste `python -m pixsim_runtime.bus_auth auth-conf` into auth.conf"
    )
    assert "include ./auth.conf" in config["nats.conf"]
    (tmp_path / "auth.conf").write_text(config["auth.conf"])
    (tmp_path / "nats.conf").write_text("include ./auth.conf\n")
    env = {**os.environ, **{password_variable(user): f"pw-{user}-0123456789" for user in USERS}}
    proc = subprocess.Popen(
        [
            shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server"),
            "-c",
            str(tmp_path / "nats.conf"),
            "-a",
            "127.0.0.1",
            "-p",
            str(free_port()),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = int(proc.args[-1])
        asyncio.run(_k8s_users_connect(f"nats://127.0.0.1:{port}"))
    finally:
        proc.terminate()
        proc.wait(10)


async def _k8s_users_connect(url: str) -> None:
    for _ in range(100):
        try:
            nc = await nats.connect(
                url,
                user="gateway",
                password="pw-gateway-0123456789",
                allow_reconnect=False,
                connect_timeout=1,
                max_reconnect_attempts=0,
            )
            await nc.close()
            break
        except (OSError, nats.errors.NoServersError):
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("nats-server did not start with the Kubernetes configuration")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(url, allow_reconnect=False, connect_timeout=1, max_reconnect_attempts=0)
