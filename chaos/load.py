"""The load: N generations, half POSTed to the gateway with an `Idempotency-Key`, half published straight onto
NATS as `generation.requested` by an upstream system (user `upstream`, `Nats-Msg-Id` = generation id).

Like a careful client, every send is retried until the system accepts it (202, or a PubAck), with the same
key or message id, however long a kill or an outage lasts. Some requests are deliberately sent twice
(same key, same message id), some are cancelled, some are pinned to one of the run's accounts (which
have concurrency slots), and a few poison messages are published that must end in the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
import nats
from pixsim_contracts import GenerationRequested, OperationType, new_id, subjects

RETRY_FOR_S = 600.0  # a client gives up on one request after this (the run then fails: unaccepted)
IN_FLIGHT = 32


@dataclass
class Request:
    """One generation the run asks for, and what the system answered."""

    n: int
    path: str  # "http" | "nats"
    key: str  # the Idempotency-Key (http) or the generation id (nats)
    body: dict[str, Any]  # provider_id, operation_type, params, account_id?
    duplicate: bool = False
    cancel: bool = False
    ids: set[str] = field(default_factory=set)  # generation ids answered (http: more than one is a bug)
    sends: int = 0
    errors: list[str] = field(default_factory=list)
    dropped_duplicate: bool | None = None  # nats: JetStream said the second publish was a duplicate

    @property
    def accepted(self) -> bool:
        return bool(self.ids)


def plan(
    n: int, accounts: list[str], seed: int, duplicate_rate: float = 0.1, cancel_rate: float = 0.03
) -> list[Request]:
    """The run's requests: outcomes, operations, paths, pins, duplicates and cancels drawn from `seed`."""
    rnd = random.Random(seed)
    requests = []
    for i in range(n):
        roll = rnd.random()
        prompt = f"chaos {i}: a fox in the snow"
        params: dict[str, Any] = {"prompt": prompt}
        if roll < 0.05:
            params["outcome"] = "fail"
        elif roll < 0.10:
            params["prompt"] = f"chaos {i}: nsfw-output"  # accepted, then moderated
        elif roll < 0.12:
            params["prompt"] = f"chaos {i}: something forbidden"  # refused at submit
        if rnd.random() < 0.7:
            op = OperationType.TEXT_TO_VIDEO
            params.update(duration=rnd.randint(1, 3), quality="360p")
        else:
            op = OperationType.TEXT_TO_IMAGE
            params.update(width=128, height=128)  # the archiver downloads it: keep the fake's work small
        body: dict[str, Any] = {"provider_id": "sim", "operation_type": op.value, "params": params}
        if accounts and rnd.random() < 0.4:
            body["account_id"] = accounts[i % len(accounts)]
        path = "http" if i % 2 == 0 else "nats"
        key = f"chaos-{seed}-{i}" if path == "http" else new_id()
        requests.append(
            Request(
                i,
                path,
                key,
                body,
                duplicate=rnd.random() < duplicate_rate,
                cancel=path == "http" and rnd.random() < cancel_rate,
            )
        )
    return requests


class Sender:
    def __init__(
        self, gateway_url: str, admin_key: str, upstream: Callable[..., Awaitable[nats.NATS]]
    ) -> None:
        self.api = httpx.AsyncClient(
            base_url=gateway_url, timeout=15, headers={"Authorization": f"Bearer {admin_key}"}
        )
        self.upstream = upstream  # connects as the NATS user `upstream`
        self.nc: nats.NATS | None = None
        self.cancels_sent = 0

    async def __aenter__(self) -> Self:
        # An upstream system's connection: it reconnects for ever, whatever happens to the server.
        self.nc = await self.upstream(
            max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=5, error_cb=quiet
        )  # NATS going away is the point of the run
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.api.aclose()
        if self.nc is not None:
            await self.nc.close()

    async def send_all(self, requests: list[Request], rate: float) -> None:
        """Start one request every 1/rate seconds (at most IN_FLIGHT unanswered), plus their duplicates."""
        slots = asyncio.Semaphore(IN_FLIGHT)
        tasks = []
        started = time.monotonic()
        for i, request in enumerate(requests):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            await slots.acquire()
            tasks.append(asyncio.create_task(self._one(request, slots)))
        await asyncio.gather(*tasks)

    async def _one(self, request: Request, slots: asyncio.Semaphore) -> None:
        try:
            await self._send(request)
        finally:
            slots.release()
        extra = []
        if request.duplicate:  # the same request again, a little later: it must change nothing
            extra.append(self._later(random.uniform(0, 20), self._send(request, again=True)))
        if request.cancel and request.ids:
            extra.append(self._later(random.uniform(1, 5), self._cancel(request)))
        await asyncio.gather(*extra)

    @staticmethod
    async def _later(delay: float, action: Any) -> None:
        await asyncio.sleep(delay)
        await action

    async def _send(self, request: Request, again: bool = False) -> None:
        deadline = time.monotonic() + RETRY_FOR_S
        wait = 0.25
        while time.monotonic() < deadline:
            request.sends += 1
            try:
                done = await (
                    self._post(request) if request.path == "http" else self._publish(request, again)
                )
            except (TimeoutError, httpx.HTTPError, nats.errors.Error, OSError) as exc:
                request.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                done = False
            if done:
                return
            await asyncio.sleep(wait)
            wait = min(wait * 2, 4.0)

    async def _post(self, request: Request) -> bool:
        resp = await self.api.post(
            "/api/v1/generations", json=request.body, headers={"Idempotency-Key": request.key}
        )
        if resp.status_code == 202:
            request.ids.add(resp.json()["id"])
            return True
        request.errors.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
        return resp.status_code < 500 and resp.status_code not in (408, 429)  # a 4xx will not get better

    async def _publish(self, request: Request, again: bool) -> bool:
        event = GenerationRequested(
            generation_id=request.key,
            provider_id=request.body["provider_id"],
            operation_type=request.body["operation_type"],
            params=request.body["params"],
            account_id=request.body.get("account_id"),
        )
        ack = await self.nc.jetstream().publish(
            event.subject, event.model_dump_json().encode(), headers={"Nats-Msg-Id": request.key}, timeout=5
        )
        request.ids.add(request.key)
        if again:
            request.dropped_duplicate = bool(ack.duplicate)
        return True

    async def _cancel(self, request: Request) -> None:
        gid = next(iter(request.ids))
        for _ in range(40):
            try:
                resp = await self.api.post(f"/api/v1/generations/{gid}/cancel")
                if resp.status_code in (202, 409):  # 409: it had already ended
                    self.cancels_sent += 1
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)

    async def create_accounts(self, n: int, concurrency: int) -> list[str]:
        """Shared sim accounts with their own tokens: jobs pinned to them take leases (slots and holds)."""
        ids = []
        for i in range(n):
            resp = await self.api.post(
                "/api/v1/accounts",
                json={
                    "provider_id": "sim",
                    "raw_data": {"token": f"chaos-token-{i}"},
                    "email": f"chaos{i}@sim.test",
                    "credits": {"sim": 1_000_000},
                    "concurrency_limit": concurrency,
                    "shared": True,
                },
            )
            resp.raise_for_status()
            ids.append(resp.json()["id"])
        return ids

    async def publish_poison(self, n: int) -> list[str]:
        """Requests that can never be valid: they must be dead-lettered, and nothing else may be."""
        ids = []
        js = self.nc.jetstream()
        for _ in range(n):
            gid = new_id()
            body = json.dumps(
                {
                    "type": "generation.requested",
                    "generation_id": gid,
                    "provider_id": "sim",
                    "operation_type": "make_coffee",
                    "params": {},
                }
            ).encode()
            await js.publish(
                subjects.generation(gid, "requested"), body, headers={"Nats-Msg-Id": gid}, timeout=10
            )
            ids.append(gid)
        return ids


async def quiet(exc: Exception) -> None:
    """nats-py prints every failed reconnect with a traceback by default."""
