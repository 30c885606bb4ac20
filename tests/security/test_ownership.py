"""Users see and change only their own generations and accounts (admins everything); somebody else's
resource answers 404 exactly like a missing one, and nothing changes. A user's job runs only on their
own accounts or on shared ones, never on another user's private account."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from accounts.kit import PROVIDER
from support import wait_for

pytestmark = pytest.mark.system


async def add_account(client: httpx.AsyncClient, token: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/accounts",
        json={"provider_id": PROVIDER, "raw_data": {"token": token}, "credits": {"sim": 100}, **body},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def generate(client: httpx.AsyncClient, prompt: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/generations",
        json={
            "provider_id": PROVIDER,
            "operation_type": "text_to_video",
            "params": {"prompt": prompt, "duration": 1},
            **extra,
        },
    )
    assert resp.status_code == 202, resp.text
    return resp.json()


def stable(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("last_used_at", "slots_used", "running_jobs")}


async def test_another_users_generations_and_accounts_answer_404_and_stay_unchanged(secure):
    admin = secure.system.api
    async with secure.client("alice") as alice, secure.client("bob") as bob:
        account = await add_account(alice, "tok-alice-own")
        assert account["owner_id"] == "alice" and account["shared"] is False
        done = await wait_for(alice, (await generate(alice, "alice's fox"))["id"])
        assert (
            done["status"] == "completed"
            and done["user_id"] == "alice"
            and done["account_id"] == account["id"]
        )
        gid, aid = done["id"], account["id"]
        ledger_before = (await admin.get(f"/api/v1/accounts/{aid}/ledger")).json()
        account_before = (await admin.get(f"/api/v1/accounts/{aid}")).json()

        attempts = {
            "get generation": await bob.get(f"/api/v1/generations/{gid}"),
            "events": await bob.get(f"/api/v1/generations/{gid}/events"),
            "content": await bob.get(f"/api/v1/generations/{gid}/content"),
            "cancel": await bob.post(f"/api/v1/generations/{gid}/cancel"),
            "get account": await bob.get(f"/api/v1/accounts/{aid}"),
            "patch account": await bob.patch(
                f"/api/v1/accounts/{aid}",
                json={"priority": 9, "enabled": False, "raw_data": {"token": "tok-bob"}},
            ),
            "top up": await bob.post(
                f"/api/v1/accounts/{aid}/credits", json={"credit_type": "sim", "amount": 50}
            ),
            "sync": await bob.post(f"/api/v1/accounts/{aid}/sync"),
            "ledger": await bob.get(f"/api/v1/accounts/{aid}/ledger"),
            "delete account": await bob.delete(f"/api/v1/accounts/{aid}"),
        }
        for what, resp in attempts.items():
            assert resp.status_code == 404, (what, resp.status_code, resp.text)
            assert resp.json()["error"]["code"] in ("generation_not_found", "account_not_found"), what
        missing = await bob.get(
            "/api/v1/generations/0000000000000000000000"
        )  # the same answer as a missing id
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "generation_not_found"
        assert gid not in {g["id"] for g in (await bob.get("/api/v1/generations?limit=200")).json()["items"]}
        assert aid not in {a["id"] for a in (await bob.get("/api/v1/accounts?limit=200")).json()["items"]}
        # bob asking for alice's list explicitly still gets his own
        assert gid not in {
            g["id"] for g in (await bob.get("/api/v1/generations?user_id=alice")).json()["items"]
        }

        # nothing changed
        assert stable((await admin.get(f"/api/v1/accounts/{aid}")).json()) == stable(account_before)
        assert (await admin.get(f"/api/v1/accounts/{aid}/ledger")).json() == ledger_before
        assert (await alice.get(f"/api/v1/generations/{gid}")).json()["status"] == "completed"

        # an admin may do all of it
        assert (await admin.get(f"/api/v1/generations/{gid}")).status_code == 200
        assert (await admin.get(f"/api/v1/generations/{gid}/content")).status_code == 307
        assert gid in {
            g["id"] for g in (await admin.get("/api/v1/generations?user_id=alice")).json()["items"]
        }
        assert (await admin.get(f"/api/v1/accounts/{aid}/ledger")).status_code == 200
        assert (await admin.patch(f"/api/v1/accounts/{aid}", json={"priority": 2})).json()["priority"] == 2
        assert (
            await admin.post(f"/api/v1/accounts/{aid}/credits", json={"credit_type": "sim", "amount": 5})
        ).status_code == 202


async def test_a_users_job_never_runs_on_another_users_private_account(secure):
    fake = secure.fake
    async with secure.client("alice") as alice, secure.client("bob") as bob:
        theirs = await add_account(alice, "tok-alice-private")
        pinned = await wait_for(bob, (await generate(bob, "bob pins alice", account_id=theirs["id"]))["id"])
        assert pinned["status"] == "failed" and pinned["error"]["code"] == "pinned_account_unavailable", (
            pinned
        )
        assert "does not exist" in pinned["error"]["message"]  # the same words as for a missing account
        # bob has no account of his own and no shared one exists yet: alice's free account is not an option
        unpinned = await wait_for(bob, (await generate(bob, "bob has no account"))["id"])
        assert unpinned["status"] == "failed" and unpinned["error"]["code"] == "no_account_available", (
            unpinned
        )
        assert not [s for s in fake.submits if s[3] in ("bob pins alice", "bob has no account")]

        own = await add_account(bob, "tok-bob-own")
        done = await wait_for(bob, (await generate(bob, "bob on his own"))["id"])
        assert done["status"] == "completed" and done["account_id"] == own["id"]
        assert {s[1] for s in fake.submits if s[3] == "bob on his own"} == {"tok-bob-own"}


async def test_shared_accounts_run_everyones_jobs_and_only_admins_manage_them(secure):
    admin = secure.system.api
    carol_key = (await admin.post("/api/v1/keys", json={"name": "carol", "owner": "carol"})).json()["token"]
    async with (
        secure.client("bob") as bob,
        httpx.AsyncClient(base_url=secure.url, headers={"Authorization": f"Bearer {carol_key}"}) as carol,
    ):
        refused = await bob.post(
            "/api/v1/accounts", json={"provider_id": PROVIDER, "raw_data": {"token": "x"}, "shared": True}
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
        refused = await bob.post(
            "/api/v1/accounts",
            json={"provider_id": PROVIDER, "raw_data": {"token": "x"}, "owner_id": "alice"},
        )
        assert refused.status_code == 403
        shared = await add_account(admin, "tok-shared", shared=True)
        assert shared["shared"] is True
        done = await wait_for(carol, (await generate(carol, "carol on the shared account"))["id"])
        assert done["status"] == "completed" and done["account_id"] == shared["id"]
        assert {s[1] for s in secure.fake.submits if s[3] == "carol on the shared account"} == {"tok-shared"}
        # carol can neither see nor change the shared account
        assert (await carol.get(f"/api/v1/accounts/{shared['id']}")).status_code == 404
        assert (
            await carol.post(
                f"/api/v1/accounts/{shared['id']}/credits", json={"credit_type": "sim", "amount": 5}
            )
        ).status_code == 404
        own = await add_account(bob, "tok-bob-2")
        patched = await bob.patch(f"/api/v1/accounts/{own['id']}", json={"shared": True})
        assert (
            patched.status_code == 403
            and (await bob.get(f"/api/v1/accounts/{own['id']}")).json()["shared"] is False
        )


async def test_owners_come_from_the_credential_and_admins_act_on_behalf_explicitly(secure):
    admin = secure.system.api
    async with secure.client("alice") as alice, secure.client("bob") as bob:
        body = {
            "provider_id": "sim",
            "operation_type": "text_to_video",
            "params": {"prompt": "mine", "duration": 1},
        }
        forged = await bob.post("/api/v1/generations", json={**body, "user_id": "alice"})
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "admin_only"
        on_behalf = await admin.post("/api/v1/generations", json={**body, "user_id": "alice"})
        assert on_behalf.status_code == 202 and on_behalf.json()["user_id"] == "alice"
        assert (await alice.get(f"/api/v1/generations/{on_behalf.json()['id']}")).status_code == 200
        # Idempotency keys are per user: bob's use of alice's key never finds alice's generation
        first = await alice.post("/api/v1/generations", json=body, headers={"Idempotency-Key": "order-1"})
        other = await bob.post("/api/v1/generations", json=body, headers={"Idempotency-Key": "order-1"})
        assert first.status_code == other.status_code == 202
        assert first.json()["id"] != other.json()["id"] and other.json()["user_id"] == "bob"
