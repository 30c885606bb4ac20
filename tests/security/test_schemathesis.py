"""schemathesis over the gateway's own OpenAPI document, with a valid admin key: every operation,
examples, boundary (coverage) and random (fuzzing) cases, bounded in number and time. No server
error, no status the document does not declare, no response that breaks its declared schema."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from accounts.kit import PROVIDER
from support import wait_for

pytestmark = pytest.mark.system

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


async def real_ids(secure) -> dict[str, str]:
    """Resources of its own for schemathesis to read, change and delete (so it gets past the 404s)."""
    api = secure.system.api
    created = await api.post(
        "/api/v1/generations",
        json={
            "provider_id": "sim",
            "operation_type": "text_to_video",
            "params": {"prompt": "fuzz me", "duration": 1},
        },
    )
    generation = await wait_for(api, created.json()["id"])
    account = (
        await api.post(
            "/api/v1/accounts",
            json={"provider_id": PROVIDER, "raw_data": {"token": "tok-fuzz"}, "credits": {"sim": 100}},
        )
    ).json()
    key = (await api.post("/api/v1/keys", json={"name": "fuzz target", "owner": "fuzz"})).json()
    return {
        "generation_id": generation["id"],
        "account_id": account["id"],
        "key_id": key["id"],
        "provider_id": "sim",
    }


@pytest.mark.timeout(300)
async def test_schemathesis_finds_no_server_error_undocumented_status_or_schema_violation(
    secure, tmp_path: Path
):
    admin_key = secure.system.api.headers["authorization"].split(" ", 1)[1]
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n" + "".join(f'"path.{k}" = "{v}"\n' for k, v in (await real_ids(secure)).items())
    )
    st = Path(sys.executable).parent / "st"
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "--config-file",
        str(config),
        "run",
        f"{secure.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {admin_key}",
        "--checks",
        CHECKS,
        "--max-examples",
        os.environ.get("PIXSIM_SCHEMATHESIS_EXAMPLES", "10"),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--seed",
        "1",
        "--request-timeout",
        "20",
        "--max-time",
        os.environ.get("PIXSIM_SCHEMATHESIS_SECONDS", "90"),
        "--no-color",
        "--generation-allow-x00",
        "false",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=400)
    text = out.decode(errors="replace")
    summary = "\n".join(
        line
        for line in text.splitlines()
        if re.search(r"operations|cases|passed|failed|errors|Seed|Test cases|API Operations", line)
    )
    print(f"\n--- schemathesis summary ---\n{summary}")
    assert proc.returncode == 0, text[-8000:]
