"""A small kustomize renderer for deploy/k8s, limited to the features this tree uses.

    .venv/bin/python -m deploy.k8s.render deploy/k8s/overlays/replicas > build/k8s/replicas.yaml

No kustomize binary installs offline here (Debian's kubectl 1.20 is the only packaged one),
so CI renders with this and validates the result (tests/unit/test_k8s_manifests.py); on a
machine with kubectl, ``kubectl kustomize deploy/k8s/overlays/replicas`` gives the same
resources (kustomize may order them by kind). Supported, with kustomize's meaning:

- ``resources``: YAML files (several documents each) and directories holding a
  ``kustomization.yaml`` (built first, recursively);
- ``patches`` with ``path``: a strategic-merge patch, applied to the resource of the same
  ``kind`` and ``metadata.name`` (maps merge key by key; lists of maps that all have a
  ``name`` merge item by item on it, like ``containers``, ``env``, ``ports``; other lists
  are replaced);
- ``replicas``: ``name`` + ``count`` set a Deployment's ``spec.replicas``;
- ``images``: ``name`` + ``newName`` / ``newTag`` / ``digest`` rewrite the image of every
  container and init container that uses that name.

Anything else in a kustomization (a key this renderer does not know, a patch whose
target is missing, two resources with one kind and name) is an error, never ignored.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "patches", "replicas", "images"}
Resource = dict[str, Any]


class RenderError(ValueError):
    """The kustomization asks for something this renderer does not do, or is inconsistent."""


def key(resource: Resource) -> tuple[str, str]:
    return resource["kind"], resource["metadata"]["name"]


def load_documents(path: Path) -> list[Resource]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def build(directory: Path) -> list[Resource]:
    """The resources the kustomization in `directory` renders to, in resource order."""
    kustomization = directory / "kustomization.yaml"
    if not kustomization.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kustomization.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise RenderError(f"{kustomization}: unsupported keys {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        resources += build(path) if path.is_dir() else load_documents(path)
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        if key(resource) in seen:
            raise RenderError(f"{kustomization}: {key(resource)} is defined twice")
        seen.add(key(resource))
    by_key = {key(r): r for r in resources}
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{kustomization}: only `path` patches are supported: {patch}")
        for doc in load_documents(directory / patch["path"]):
            target = by_key.get(key(doc))
            if target is None:
                raise RenderError(f"{kustomization}: patch target {key(doc)} not found")
            merged = strategic_merge(target, doc)
            target.clear()
            target.update(merged)
    for replicas in spec.get("replicas", []):
        target = by_key.get(("Deployment", replicas["name"]))
        if target is None:
            raise RenderError(f"{kustomization}: no Deployment {replicas['name']} to scale")
        target["spec"]["replicas"] = int(replicas["count"])
    for image in spec.get("images", []):
        used = False
        for resource in resources:
            used |= set_image(resource, image)
        if not used:
            raise RenderError(f"{kustomization}: no container uses image {image['name']}")
    return resources


def strategic_merge(base: Any, patch: Any) -> Any:
    """`patch` merged into a copy of `base` (see the module docstring for the list rule)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            out[k] = strategic_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if _named_list(base) and _named_list(patch):
        out = copy.deepcopy(base)
        index = {item["name"]: i for i, item in enumerate(out)}
        for item in patch:
            if item["name"] in index:
                out[index[item["name"]]] = strategic_merge(out[index[item["name"]]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def image_name(image: str) -> str:
    """``registry:5000/app:tag`` → ``registry:5000/app`` (a port is not a tag)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def set_image(resource: Resource, image: dict[str, str]) -> bool:
    """Rewrite the containers of `resource` that use ``image["name"]``; True if any did."""
    pod = resource.get("spec", {}).get("template", {}).get("spec", {})
    used = False
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        if image_name(container["image"]) != image["name"]:
            continue
        used = True
        current = container["image"]
        name = image.get("newName", image["name"])
        tag = current[len(image_name(current)) :]
        if "newTag" in image:
            tag = ":" + str(image["newTag"])
        if "digest" in image:
            tag = "@" + image["digest"]
        container["image"] = name + tag
    return used


def render(directory: Path) -> str:
    return yaml.safe_dump_all(build(directory), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="render a deploy/k8s kustomization")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.directory))
    except RenderError as exc:
        parser.exit(1, f"render: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
