"""The gateway is reachable only from the ingress controller's namespace (its bootstrap admin key in the
Secret, never the ConfigMap), and NATS only from PixSim's pods and namespaces an admin labelled for
upstream publishers."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the overlays")


def _check() -> Any:
    spec = importlib.util.spec_from_file_location("pixsim_check_exposure", ROOT / "deploy" / "check.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_gateway_ingress_admits_only_the_ingress_controllers_namespace(overlay: str) -> None:
    check = _check()
    objs = check.objects(check.render(overlay))
    policies = [
        o
        for o in objs
        if o["kind"] == "NetworkPolicy"
        and o["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "gateway"
    ]
    rules = [rule for p in policies for rule in p["spec"].get("ingress", [])]
    assert rules, "the gateway has an ingress policy"
    for rule in rules:
        sources = rule.get("from")
        assert sources, f"an ingress rule without `from` admits every source: {rule}"
        for source in sources:
            assert set(source) == {"namespaceSelector"}, source
            assert source["namespaceSelector"] == {
                "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
            }
    config = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "pixsim-config"]
    assert all("PIXSIM_BOOTSTRAP_ADMIN_KEY" not in c.get("data", {}) for c in config)
    gateway = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "gateway")
    env_from = gateway["spec"]["template"]["spec"]["containers"][0].get("envFrom", [])
    assert {"secretRef": {"name": "pixsim-secrets"}} in env_from  # where PIXSIM_BOOTSTRAP_ADMIN_KEY lives


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_nats_admits_other_namespaces_only_when_an_admin_labelled_them(overlay: str) -> None:
    check = _check()
    policy = next(
        o
        for o in check.objects(check.render(overlay))
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "nats"
    )
    client_rules = [r for r in policy["spec"]["ingress"] if {p["port"] for p in r["ports"]} == {4222}]
    sources = [source for rule in client_rules for source in rule["from"]]
    assert sources
    for source in sources:
        namespaces = source.get("namespaceSelector")
        # no selector: this namespace only; otherwise a namespace label, which a pod cannot set on itself
        assert namespaces is None or namespaces == {"matchLabels": {"pixsim.io/nats-upstream": "true"}}, (
            source
        )
        assert source["podSelector"] == {"matchLabels": {"pixsim.io/nats-client": "true"}}
