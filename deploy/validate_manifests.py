"""Validate the Kubernetes manifests: JSON schemas, then the cross-references between them.

Run by deploy/validate-manifests.sh in a virtualenv with kubernetes-validate,
which ships the Kubernetes JSON schemas inside the package, so nothing is
fetched at run time (the shell script runs this without network to prove it).

    python validate_manifests.py DIR_OR_FILE... [--kubernetes-version 1.30.0 ...]

1. Every document of every *.yaml/*.yml (kustomization.yaml aside) must
   validate, strictly (no unknown fields, so a typo such as `readinesProbe`
   fails), against the schema of each Kubernetes version given. A kind or
   apiVersion with no schema is an error too (kubernetes-validate's own CLI
   only warns about it).
2. kustomization.yaml must list exactly the manifest files of its directory.
3. Selectors, names and ports that refer to one another must agree, and the
   Deployment must keep the security and probe settings the image relies on.

Exit status 1 when anything fails, with one line per problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

APP_LABEL = ("app.kubernetes.io/name", "sitrep")
SERVICE_UID = 10001
# Must be writable although the root filesystem is read-only (a mount path, not a temp file).
TMP_DIR = "/tmp"  # noqa: S108

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def load_documents(path: Path) -> list[dict[str, Any]] | None:
    """The documents of a YAML file, or None (and a problem noted) when it does not parse."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as error:
        problem(str(path), f"not valid YAML: {error}")
        return None
    for doc in docs:
        if not isinstance(doc, dict):
            problem(str(path), f"a document is a {type(doc).__name__}, not a mapping")
    return [d for d in docs if isinstance(d, dict)]


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def validate_schema(path: Path, doc: dict[str, Any], versions: list[str]) -> bool:
    where = f"{path} {name_of(doc)}"
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str):
            problem(where, f"missing {key}")
            return False
    ok = True
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            field = ".".join(str(p) for p in error.path) or "(top level)"
            problem(where, f"invalid against Kubernetes {version}: {field}: {error.message}")
            ok = False
        except (
            kubernetes_validate.SchemaNotFoundError,
            kubernetes_validate.InvalidSchemaError,
        ) as error:
            problem(where, f"Kubernetes {version}: {error.message}")
            ok = False
    return ok


def check_kustomization(directory: Path, manifest_files: list[Path]) -> None:
    path = directory / "kustomization.yaml"
    if not path.exists():
        problem(str(directory), "no kustomization.yaml")
        return
    docs = load_documents(path)
    if docs is None:
        return
    if len(docs) != 1:
        problem(str(path), "expected exactly one document")
        return
    listed = docs[0].get("resources") or []
    for entry in listed:
        if not (directory / entry).exists():
            problem(str(path), f"lists {entry}, which does not exist")
    unlisted = sorted({p.name for p in manifest_files} - set(listed))
    if unlisted:
        problem(str(path), f"does not list {', '.join(unlisted)}")


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def check_deployment(dep: dict[str, Any], by_kind: dict[str, dict[str, dict[str, Any]]]) -> None:
    where = name_of(dep)
    spec = dep.get("spec", {})
    template = spec.get("template", {})
    pod_labels = (template.get("metadata") or {}).get("labels") or {}
    pod = template.get("spec", {})

    if not selects(spec.get("selector", {}).get("matchLabels"), pod_labels):
        problem(where, "spec.selector.matchLabels does not match the pod template's labels")
    for constraint in pod.get("topologySpreadConstraints", []):
        if not selects((constraint.get("labelSelector") or {}).get("matchLabels"), pod_labels):
            problem(where, "a topologySpreadConstraint's labelSelector misses the pods")

    # Other objects that must point at these pods.
    for svc in by_kind.get("Service", {}).values():
        if not selects(svc.get("spec", {}).get("selector"), pod_labels):
            problem(name_of(svc), f"selector does not select the pods of {where}")
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        if not selects(pdb.get("spec", {}).get("selector", {}).get("matchLabels"), pod_labels):
            problem(name_of(pdb), f"selector does not select the pods of {where}")

    pod_sc = pod.get("securityContext", {})
    if pod_sc.get("runAsNonRoot") is not True or pod_sc.get("runAsUser") != SERVICE_UID:
        problem(where, f"pod securityContext must set runAsNonRoot: true, runAsUser: {SERVICE_UID}")
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problem(where, "pod securityContext.seccompProfile.type must be RuntimeDefault")
    if "terminationGracePeriodSeconds" not in pod:
        problem(where, "terminationGracePeriodSeconds is not set")
    if pod.get("enableServiceLinks") is not False:
        problem(
            where, "enableServiceLinks must be false (a Service named sitrep injects SITREP_PORT)"
        )

    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    for container in pod.get("containers", []):
        cwhere = f"{where} container {container.get('name')}"
        port_names = {p.get("name") for p in container.get("ports", [])}
        port_numbers = {p.get("containerPort") for p in container.get("ports", [])}
        sc = container.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problem(cwhere, "allowPrivilegeEscalation must be false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problem(cwhere, "readOnlyRootFilesystem must be true")
        if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
            problem(cwhere, "capabilities must drop ALL")
        mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts", [])}
        if "emptyDir" not in volumes.get(mounts.get(TMP_DIR), {}):
            problem(
                cwhere, f"{TMP_DIR} must be an emptyDir mount (the root filesystem is read-only)"
            )
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(kind) or {}):
                    problem(cwhere, f"resources.{kind}.{resource} is not set")
        expected_paths = {
            "startupProbe": None,
            "readinessProbe": "/readyz",
            "livenessProbe": "/healthz",
        }
        for probe_name, path in expected_paths.items():
            probe = container.get(probe_name)
            if not probe:
                problem(cwhere, f"no {probe_name}")
                continue
            get = probe.get("httpGet") or {}
            if path and get.get("path") != path:
                problem(cwhere, f"{probe_name} must GET {path}, not {get.get('path')}")
            port = get.get("port")
            if port not in port_names and port not in port_numbers:
                problem(
                    cwhere, f"{probe_name} uses port {port!r}, which the container does not expose"
                )
        for svc in by_kind.get("Service", {}).values():
            for sport in svc.get("spec", {}).get("ports", []):
                target = sport.get("targetPort", sport.get("port"))
                if target not in port_names and target not in port_numbers:
                    problem(name_of(svc), f"targetPort {target!r} is not a port of {cwhere}")
        for source in container.get("envFrom", []):
            for ref_key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                ref = source.get(ref_key)
                if ref and not ref.get("optional") and ref.get("name") not in by_kind.get(kind, {}):
                    problem(cwhere, f"envFrom {kind} {ref.get('name')!r} is not defined here")


def check_references(docs: list[dict[str, Any]]) -> None:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        name = (doc.get("metadata") or {}).get("name")
        by_kind.setdefault(doc.get("kind", "?"), {})[name] = doc
        labels = (doc.get("metadata") or {}).get("labels") or {}
        if labels.get(APP_LABEL[0]) != APP_LABEL[1]:
            problem(name_of(doc), f"missing label {APP_LABEL[0]}: {APP_LABEL[1]}")

    deployments = by_kind.get("Deployment", {})
    if not deployments:
        problem("manifests", "no Deployment")
    for dep in deployments.values():
        check_deployment(dep, by_kind)
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        target = hpa.get("spec", {}).get("scaleTargetRef", {})
        if target.get("name") not in by_kind.get(target.get("kind"), {}):
            problem(
                name_of(hpa),
                f"scaleTargetRef {target.get('kind')}/{target.get('name')} is not defined",
            )


def main() -> int:
    parser = argparse.ArgumentParser(description="validate Kubernetes manifests offline")
    parser.add_argument("paths", nargs="+", type=Path, help="manifest files or directories")
    parser.add_argument(
        "-k",
        "--kubernetes-version",
        action="append",
        dest="versions",
        help="Kubernetes version to validate against (repeatable)",
    )
    args = parser.parse_args()
    versions = args.versions or [kubernetes_validate.latest_version()]

    all_docs: list[dict[str, Any]] = []
    for root in args.paths:
        if root.is_dir():
            files = sorted(p for p in root.iterdir() if p.suffix in {".yaml", ".yml"})
            manifests = [p for p in files if p.name != "kustomization.yaml"]
            check_kustomization(root, manifests)
        elif root.is_file():
            manifests = [root]
        else:
            problem(str(root), "no such file or directory")
            continue
        for path in manifests:
            docs = load_documents(path)
            if docs is None:
                continue
            if not docs:
                problem(str(path), "no Kubernetes object in this file")
            for doc in docs:
                if validate_schema(path, doc, versions):
                    print(
                        f"ok     {path} {name_of(doc)} (Kubernetes {', '.join(versions)}, strict)"
                    )
            all_docs.extend(docs)

    check_references(all_docs)
    for line in problems:
        print(f"ERROR  {line}")
    if problems:
        print(f"{len(problems)} problem(s) in {len(all_docs)} object(s)")
        return 1
    print(f"all {len(all_docs)} object(s) valid; references consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
