"""PixSim API keys: random, prefixed, stored only as a hash, revocable at once; admins create and
revoke any key, users list and revoke their own. Also through `pixsim keys ...`."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest
from pixsim_gateway.cli import app
from typer.testing import CliRunner

pytestmark = pytest.mark.system


async def test_keys_are_random_hashed_listed_and_revoked(secure):
    admin, db = secure.system.api, secure.system.db
    created = await admin.post("/api/v1/keys", json={"name": "dave's script", "owner": "dave"})
    assert created.status_code == 201, created.text
    key = created.json()
    token, key_id = key["token"], key["id"]
    prefix, kid, secret = token.split("_", 2)
    assert prefix == "psk" and kid == key_id and len(secret) >= 43  # 32 random bytes: 256 bits
    stored = await db["api_keys"].find_one({"_id": key_id})
    assert stored["hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert secret not in json.dumps(stored, default=str)  # only the hash is kept

    async with httpx.AsyncClient(base_url=secure.url, headers={"Authorization": f"Bearer {token}"}) as dave:
        mine = (await dave.get("/api/v1/keys")).json()["items"]
        assert [k["id"] for k in mine] == [key_id] and "hash" not in mine[0] and "token" not in mine[0]
        assert mine[0]["last_used_at"] is not None  # this very call used it
        refused = await dave.post("/api/v1/keys", json={"name": "more", "owner": "dave"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
        alice_key_id = secure.keys["alice"].split("_")[1]
        assert (await dave.get(f"/api/v1/keys/{alice_key_id}")).status_code == 404
        assert (await dave.delete(f"/api/v1/keys/{alice_key_id}")).status_code == 404
        revoked = await dave.delete(f"/api/v1/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked"] is True
        after = await dave.get("/api/v1/generations")
        assert after.status_code == 401  # at once
    async with secure.client("alice") as alice:
        assert (await alice.get("/api/v1/generations")).status_code == 200  # other keys unaffected
    everyone = (await admin.get("/api/v1/keys?limit=200")).json()["items"]
    assert {"alice", "bob", "dave"} <= {k["owner"] for k in everyone}


async def test_keys_from_the_command_line(secure):
    runner = CliRunner()

    def pixsim(*args: str, key: str | None = None):
        env = {"PIXSIM_API_KEY": key} if key else {}
        return runner.invoke(app, ["--api", secure.url, *args], env=env)

    admin_key = secure.system.api.headers["authorization"].split(" ", 1)[1]
    made = await asyncio.to_thread(
        pixsim, "keys", "create", "--name", "ci bot", "--owner", "erin", key=admin_key
    )
    assert made.exit_code == 0, made.output
    token = next(word for word in made.output.split() if word.startswith("psk_"))
    listed = await asyncio.to_thread(pixsim, "keys", "list", key=token)
    assert listed.exit_code == 0 and "ci bot" in listed.output and "erin" in listed.output, listed.output
    assert token not in listed.output
    key_id = token.split("_")[1]
    gone = await asyncio.to_thread(pixsim, "keys", "revoke", key_id, key=token)
    assert gone.exit_code == 0 and "revoked" in gone.output
    refused = await asyncio.to_thread(pixsim, "keys", "list", key=token)
    assert refused.exit_code == 2 and "unauthenticated" in refused.output
