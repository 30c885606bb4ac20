"""`pixsim accounts` against the real services (the CLI is sync, so it runs in a thread)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from accounts.kit import PROVIDER, running
from pixsim_gateway.cli import app
from support import wait_for
from typer.testing import CliRunner

pytestmark = pytest.mark.system
runner = CliRunner()


async def test_accounts_add_list_show_update_and_sync(fresh_servers, acct_fake, tmp_path):
    async with running(fresh_servers, acct_fake) as system:
        url = str(system.api.base_url)

        async def pixsim(*args: str):
            result = await asyncio.to_thread(
                runner.invoke, app, ["--api", url, "accounts", *args], env={"COLUMNS": "160"}
            )
            assert "cli-secret" not in result.output  # credentials never come back out
            return result

        raw = tmp_path / "capture.json"
        raw.write_text(json.dumps({"cookies": [{"name": "sim_token", "value": "cli-secret"}]}))
        added = await pixsim(
            "add", "-p", PROVIDER, "--raw-file", str(raw), "-c", "sim=30", "--concurrency", "2"
        )
        assert added.exit_code == 0, added.output
        account = re.search(r"account (\S+) added \(active\)", added.output).group(1)
        await system.wait_account(account, lambda v: v["balances"].get("sim", {}).get("balance") == 30)
        await wait_for(system.api, await system.generate(prompt="from the cli", duration=2))

        listed = await pixsim("list", "--provider", PROVIDER)
        assert listed.exit_code == 0 and account in listed.output and "sim 28/28" in listed.output, (
            listed.output
        )
        shown = await pixsim("show", account)
        assert shown.exit_code == 0 and "charged" in shown.output and "grant" in shown.output, shown.output
        as_json = json.loads((await pixsim("show", account, "--json", "--ledger", "2")).stdout)
        assert as_json["id"] == account and len(as_json["ledger"]) == 2

        updated = await pixsim("update", account, "--priority", "7", "--disable")
        assert updated.exit_code == 0 and "disabled, priority 7" in updated.output, updated.output
        revived = await pixsim("update", account, "--enable", "--token", "cli-secret-2")
        assert revived.exit_code == 0 and "active" in revived.output

        acct_fake.balances["cli-secret-2"] = {"sim": 25}
        synced = await pixsim("sync", account)
        assert synced.exit_code == 0 and "sim=25" in synced.output
        missing = await pixsim("show", "acc_missing")
        assert missing.exit_code == 2 and "account_not_found" in missing.output
        nothing = await pixsim("update", account)
        assert nothing.exit_code == 2
