"""What `kubectl apply -k deploy/base` would send, computed here without kustomize.

No kustomize or kubectl binary is installable here, and no Python package renders
kustomizations faithfully, so deploy/base keeps to the part of Kustomize that is plain data:
`resources` (files, in order) and `namespace` (set on every namespaced object). Anything else in
kustomization.yaml (generators, patches, overlays) is refused here rather than approximated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "resources"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


def render(base: Path) -> list[dict[str, Any]]:
    """Every object of the kustomization at `base`, in the order of its `resources`."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_KEYS
    if unsupported:
        raise ValueError(f"{base}/kustomization.yaml: {sorted(unsupported)} are not rendered here")
    namespace = kustomization.get("namespace")
    objects = []
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((base / resource).read_text()):
            if document is None:
                continue
            if namespace and document["kind"] not in CLUSTER_SCOPED:
                document.setdefault("metadata", {})["namespace"] = namespace
            objects.append(document)
    return objects
