"""Render deploy/k8s (base and every overlay) with kustomize and validate each object offline.

Kubernetes kinds are checked against the schemas that the `kubernetes-validate` package ships (strict: an
unknown field is an error); KEDA and Strimzi kinds against the trimmed CRD schemas vendored in
deploy/k8s/schemas. No cluster and no network. Exit 0 when everything validates, 1 otherwise.
    python deploy/tools/validate_k8s.py [--kustomize PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

K8S = Path(__file__).resolve().parents[1] / "k8s"
KUBERNETES_VERSION = "1.33.0"
TARGETS = ("base", "overlays/strimzi", "overlays/external")


def render(target: str, kustomize: str) -> list[dict[str, Any]]:
    """The objects `kustomize build` makes of one directory under deploy/k8s."""
    done = subprocess.run([kustomize, "build", str(K8S / target)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"kustomize build {target}: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    path = K8S / "schemas" / f"{api_version.replace('/', '_')}_{kind}.json"
    if not path.exists():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def problems(objects: list[dict[str, Any]]) -> list[str]:
    """One line per object that does not validate."""
    found: list[str] = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        crd = _crd_schema(str(obj.get("apiVersion")), str(obj.get("kind")))
        try:
            if crd is not None:
                jsonschema.validate(obj, crd)
            else:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except jsonschema.ValidationError as exc:
            found.append(f"{name}: {exc.json_path}: {exc.message}")
        except kubernetes_validate.ValidationError as exc:
            found.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            found.append(f"{name}: no schema: {exc}")
    return found


def find_kustomize() -> str | None:
    on_path = shutil.which("kustomize")
    if on_path:
        return on_path
    installer = Path(__file__).with_name("install-kustomize.sh")
    done = subprocess.run(["bash", str(installer)], capture_output=True, text=True)
    return done.stdout.strip() or None if done.returncode == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kustomize", help="kustomize binary (default: PATH, else install-kustomize.sh)")
    args = parser.parse_args()
    kustomize = args.kustomize or find_kustomize()
    if not kustomize:
        print("error: no kustomize (deploy/tools/install-kustomize.sh builds one)", file=sys.stderr)
        return 1
    failed = 0
    for target in TARGETS:
        objects = render(target, kustomize)
        found = problems(objects)
        failed += len(found)
        print(f"{target}: {len(objects)} objects, {len(found)} invalid")
        for line in found:
            print(f"  {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
