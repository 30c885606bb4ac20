"""deploy/k8s: `make k8s` is clean, and the rendered overlays say what the issue asks for.

Runs offline: `kubectl kustomize` renders, kubernetes-validate checks every object against the
Kubernetes schemas, checkov applies its policies, hadolint lints the Dockerfile. No cluster is needed;
what only a cluster can show (pods scheduling, probes answering) is listed in the README instead.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("gateway", "dispatcher", "poller", "billing")

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: it renders the kustomize overlays"
)


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"pixsim_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


check = _load(ROOT / "deploy" / "check.py")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: check.objects(check.render(overlay)) for overlay in check.overlays()}


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_make_k8s_is_clean() -> None:
    out = io.StringIO()
    problems = check.run_all(out)
    assert problems == 0, out.getvalue()
    assert "checkov kubernetes on dev, prod" in out.getvalue() and "hadolint" in out.getvalue()


def test_overlays_are_dev_and_prod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert set(rendered) == {"dev", "prod"}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_services_have_probes_resources_and_locked_down_containers(rendered, overlay: str) -> None:
    objs = rendered[overlay]
    for role in ROLES:
        pod = one(objs, "Deployment", role)["spec"]["template"]["spec"]
        (main,) = pod["containers"]
        assert main["args"] == [role]
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(main["resources"]["requests"]) and {"cpu", "memory"} <= set(
            main["resources"]["limits"]
        )
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
        refs = [next(iter(ref.values()))["name"] for ref in main["envFrom"]]
        assert refs == ["pixsim-config", "pixsim-secrets"]
        # held until the streams and its consumers exist, checked as its own NATS user
        assert pod["initContainers"][0]["command"][-3:] == ["--wait", "--service", role]
        for container in (main, pod["initContainers"][0]):
            assert {"name": "NATS_USER", "value": role} in container["env"]
            assert {
                "name": "nats-credentials",
                "mountPath": "/var/run/secrets/pixsim-nats",
                "readOnly": True,
            } in container["volumeMounts"]
        (creds,) = [v for v in pod["volumes"] if v["name"] == "nats-credentials"]
        assert creds["secret"]["secretName"] == "pixsim-nats"
        assert creds["secret"]["items"] == [{"key": role, "path": role}]  # its own password, no other


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_disruption_budgets_and_autoscaling(rendered, overlay: str) -> None:
    objs = rendered[overlay]
    budgets = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for p in find(objs, "PodDisruptionBudget")
    }
    assert set(ROLES) | {"nats"} <= budgets
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in find(objs, "HorizontalPodAutoscaler")}
    assert scaled == {"dispatcher", "poller"}
    for name in scaled:  # the HPA owns the replica count; a fixed one would fight it on every apply
        assert "replicas" not in one(objs, "Deployment", name)["spec"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_nats_is_a_three_node_jetstream_cluster(rendered, overlay: str) -> None:
    objs = rendered[overlay]
    nats = one(objs, "StatefulSet", "nats")
    assert (
        nats["spec"]["replicas"] == 3
        and nats["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    )
    conf = one(objs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "jetstream {" in conf and "store_dir: /data" in conf
    assert [f"nats://nats-{i}.nats-headless:6222" in conf for i in range(3)] == [True] * 3
    config = one(objs, "ConfigMap", "pixsim-config")["data"]
    assert config["NATS_URL"] == "nats://nats:4222"
    assert config["PIXSIM_NATS_CREDENTIALS_DIR"] == "/var/run/secrets/pixsim-nats"
    job_pod = one(objs, "Job", "jetstream-setup")["spec"]["template"]["spec"]
    job = job_pod["containers"][0]
    assert job["command"] == ["python", "/app/deploy/image/jetstream_setup.py"]
    assert {"name": "NATS_USER", "value": "setup"} in job["env"]
    (creds,) = [v for v in job_pod["volumes"] if v["name"] == "nats-credentials"]
    assert creds["secret"]["items"] == [{"key": "setup", "path": "setup"}]
    # authorization on, from the Secret: every user's password is an environment variable of the NATS pods
    nats_conf = one(objs, "ConfigMap", "nats-config")["data"]
    assert "include ./auth.conf" in nats_conf["nats.conf"] and "no_auth_user" not in nats_conf["nats.conf"]
    assert "authorization {" in nats_conf["auth.conf"]
    env = {e["name"]: e for e in nats["spec"]["template"]["spec"]["containers"][0]["env"]}
    for user in ("gateway", "dispatcher", "poller", "billing", "setup", "upstream", "admin"):
        ref = env[f"NATS_PASSWORD_{user.upper()}"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "pixsim-nats", "key": user}
        assert f"$NATS_PASSWORD_{user.upper()}" in nats_conf["auth.conf"]
    assert (ROOT / "deploy" / "image" / "jetstream_setup.py").exists()


def test_prod_replicates_streams_and_uses_external_mongo(rendered) -> None:
    prod, dev = rendered["prod"], rendered["dev"]
    config = one(prod, "ConfigMap", "pixsim-config")["data"]
    assert config["PIXSIM_STREAM_REPLICAS"] == "3"
    assert "MONGO_URL" not in config and not find(prod, "StatefulSet", "mongo")
    affinity = one(prod, "StatefulSet", "nats")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in affinity
    assert one(dev, "StatefulSet", "mongo")["spec"]["replicas"] == 3
    assert "replicaSet=rs0" in one(dev, "ConfigMap", "pixsim-config")["data"]["MONGO_URL"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_secrets_never_sit_in_a_configmap(rendered, overlay: str) -> None:
    for cm in find(rendered[overlay], "ConfigMap"):
        assert "PIXSIM_CREDENTIALS_KEY" not in (cm.get("data") or {})
    assert not find(rendered[overlay], "Secret")  # the operator creates pixsim-secrets; none is checked in


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_observability_stack(rendered, overlay: str) -> None:
    objs = rendered[overlay]
    collector = one(objs, "ConfigMap", "otel-collector-config")["data"]["collector.yaml"]
    pipelines = yaml.safe_load(collector)["service"]["pipelines"]
    assert pipelines["traces"]["receivers"] == ["otlp"] and pipelines["metrics"]["exporters"] == [
        "prometheus"
    ]
    config = one(objs, "ConfigMap", "pixsim-config")["data"]
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    if overlay == "dev":
        for name in ("tempo", "prometheus", "grafana"):
            one(objs, "Deployment", name)


# -- NetworkPolicies: evaluate what each service may reach ------------------------------------------
def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def allowed_ports(objs: list[dict[str, Any]], pod_labels: dict[str, str], direction: str) -> set[int]:
    """Every port some policy lets this pod use in `direction` ('ingress' or 'egress')."""
    ports: set[int] = set()
    for policy in find(objs, "NetworkPolicy"):
        if _selects(policy, pod_labels):
            for rule in policy["spec"].get(direction, []):
                ports |= {p["port"] for p in rule.get("ports", [])}
    return ports


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_network_policies_allow_only_what_each_service_needs(rendered, overlay: str) -> None:
    objs = rendered[overlay]
    denied = one(objs, "NetworkPolicy", "default-deny")["spec"]
    assert denied["podSelector"] == {} and set(denied["policyTypes"]) == {"Ingress", "Egress"}
    base_egress = {53, 4222, 27017, 4317, 4318}
    fake_provider = {8100} if overlay == "dev" else set()
    expected = {
        "gateway": (base_egress, {8000}),
        "billing": (base_egress, set()),
        "dispatcher": (base_egress | {443} | fake_provider, set()),
        "poller": (base_egress | {443} | fake_provider, set()),
    }
    for role, (egress, ingress) in expected.items():
        labels = one(objs, "Deployment", role)["spec"]["template"]["metadata"]["labels"]
        assert allowed_ports(objs, labels, "egress") == egress, role
        assert allowed_ports(objs, labels, "ingress") == ingress, role
    job = one(objs, "Job", "jetstream-setup")["spec"]["template"]["metadata"]["labels"]
    assert allowed_ports(objs, job, "egress") == {53, 4222}


# -- the checks themselves fail when they should ----------------------------------------------------
def test_schema_validation_rejects_unknown_fields_and_bad_types() -> None:
    bad = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}, "extra": 1},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "y"},
            "spec": {"replicas": "two"},
        },
    ]
    problems = check.validate(bad, check.K8S_VERSIONS[0])
    assert len(problems) == 2 and "ConfigMap/-/x" in problems[0] and "Deployment/-/y" in problems[1]


def test_checkov_fails_a_privileged_pod(tmp_path: Path) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "x"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(pod))
    _, problems = check.checkov([path], "kubernetes", [])
    assert any("CKV_K8S_16" in p for p in problems)  # "Container should not be privileged"


def test_every_policy_exception_needs_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(len(reason) > 40 for reason in check.policy_exceptions().values())
    empty = tmp_path / "exceptions.yaml"
    empty.write_text("checkov:\n  CKV_K8S_8:\n    check: Liveness Probe Should be Configured\n")
    monkeypatch.setattr(check, "EXCEPTIONS", empty)
    with pytest.raises(RuntimeError, match="no reason given for CKV_K8S_8"):
        check.policy_exceptions()
    skipped = [{"kind": "Pod", "metadata": {"name": "p", "annotations": {"checkov.io/skip1": "CKV_K8S_8"}}}]
    assert check.annotation_skips(skipped)
