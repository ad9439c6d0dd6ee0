"""deploy/k8s, checked offline: every overlay renders, every resource passes the Kubernetes
schemas of several versions (strict: an unknown field fails), and the manifests agree with
compose.yaml (images, ports, variables, limits, hardening, healthchecks); compose.yaml, the
manifests, their ConfigMap and the README agree with the stack catalogue
(services/common/catalogue.py).

No cluster runs here: what a kubelet would do with these manifests is NOT tested (see the
README "Kubernetes"). ``kubernetes-validate`` (requirements/dev.txt) bundles the schemas;
without it the schema tests are skipped outside CI and fail under ``CI=true``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.k8s import render as k8s
from services.common.catalogue import BACKENDS as CATALOGUE_BACKENDS
from services.common.catalogue import NAMES, SERVICES
from tests.stack import IN_CI

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["base", "overlays/replicas", "overlays/load"]
# three current minor versions of Kubernetes, strict schemas bundled by kubernetes-validate
VERSIONS = ["1.33.0", "1.35.0", "1.37.0"]
BACKENDS = [s.name for s in CATALOGUE_BACKENDS]
METRICS_PORTS = {s.name: s.metrics_port for s in SERVICES}
LOAD = ["locust-master", "locust-worker"]
# the ConfigMap's values that differ from compose's on purpose (None: not in it)
K8S_OWN: dict[str, str | None] = {
    "WEB_FAULTS": "",
    "WEB_PUBLISHED_HOST": None,
    "POLYLOOP_ADMIN_TOKEN": None,  # a Secret, not a ConfigMap value
}

try:
    import kubernetes_validate
except ImportError:  # the lead adds it to requirements/dev.txt
    kubernetes_validate = None


def need_validator() -> Any:
    if kubernetes_validate is None:
        message = "kubernetes-validate is not installed (requirements/dev.txt; make venv)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return kubernetes_validate


def rendered(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {k8s.key(r): r for r in k8s.build(K8S / overlay)}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def load() -> dict[tuple[str, str], dict[str, Any]]:
    return rendered("overlays/load")


def documented_defaults() -> dict[str, str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    return {m[1]: m[2] for m in re.finditer(r"^\| `([A-Z_]+)` \| `([^`]*)`", text, re.M)}


def container(resources: dict, name: str) -> dict[str, Any]:
    pod = resources[("Deployment", name)]["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return only


# ---- rendering


def test_every_overlay_renders_the_whole_stack() -> None:
    for overlay in OVERLAYS:
        resources = rendered(overlay)
        for name in [*BACKENDS, "web"]:
            assert ("Deployment", name) in resources, overlay
            assert ("Service", name) in resources, overlay
        assert ("ConfigMap", "polyloop-env") in resources
    assert ("Deployment", "locust-master") not in rendered("overlays/replicas")


def test_the_overlays_set_the_issue_replica_counts(load: dict) -> None:
    base = rendered("base")
    assert {base[("Deployment", n)]["spec"]["replicas"] for n in [*BACKENDS, "web"]} == {1}
    counts = {"tcp-echo": 3, "udp-echo": 2, "resolver": 2, "dns": 2, "web": 1}
    for overlay in ("overlays/replicas", "overlays/load"):
        resources = rendered(overlay)
        for name, count in counts.items():
            assert resources[("Deployment", name)]["spec"]["replicas"] == count
    assert load[("Deployment", "locust-worker")]["spec"]["replicas"] == 2
    # the load overlay's patch changes one key of the ConfigMap, and only that one
    base_env = base[("ConfigMap", "polyloop-env")]["data"]
    load_env = load[("ConfigMap", "polyloop-env")]["data"]
    assert load_env == {**base_env, "LOG_LEVEL": "WARNING"}


def test_the_renderer_refuses_what_it_does_not_do(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    cases = {
        "namePrefix: x-\nresources: [cm.yaml]\n": "unsupported keys",
        "resources: [cm.yaml, cm.yaml]\n": "defined twice",
        "resources: [cm.yaml]\nreplicas: [{name: web, count: 2}]\n": "no Deployment web",
        "resources: [cm.yaml]\nimages: [{name: nope, newTag: v1}]\n": "no container uses",
        "resources: [cm.yaml]\npatches: [{path: p.yaml}]\n": "patch target",
    }
    (tmp_path / "p.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    for kustomization, error in cases.items():
        (tmp_path / "kustomization.yaml").write_text(kustomization)
        with pytest.raises(k8s.RenderError, match=error):
            k8s.build(tmp_path)


def test_strategic_merge_merges_named_lists_and_replaces_others() -> None:
    base = {"containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "b"}]}
    patch = {"containers": [{"name": "a", "args": ["2"]}, {"name": "c"}]}
    assert k8s.strategic_merge(base, patch) == {
        "containers": [{"name": "a", "image": "x", "args": ["2"]}, {"name": "b"}, {"name": "c"}]
    }


def test_images_are_rewritten_by_name_keeping_registry_ports() -> None:
    resource = {"spec": {"template": {"spec": {"containers": [{"image": "reg:5000/app:1"}]}}}}
    assert k8s.set_image(resource, {"name": "reg:5000/app", "newName": "r2/app", "newTag": "2"})
    assert resource["spec"]["template"]["spec"]["containers"][0]["image"] == "r2/app:2"
    assert k8s.image_name("reg:5000/app") == "reg:5000/app"


# ---- schemas


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_resource_passes_the_strict_schema(overlay: str, version: str) -> None:
    validator = need_validator()
    for resource in k8s.build(K8S / overlay):
        validator.validate(resource, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_file_passes_the_strict_schema(version: str) -> None:
    validator = need_validator()
    files = [p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"]
    patches = {K8S / "overlays" / "load" / "quiet-logs.yaml"}  # partial by design
    assert len(files) >= 8
    for path in sorted(set(files) - patches):
        for resource in k8s.load_documents(path):
            validator.validate(resource, version, strict=True)


def test_the_strict_schema_catches_a_typo(load: dict) -> None:
    validator = need_validator()
    deployment = yaml.safe_load(yaml.safe_dump(load[("Deployment", "tcp-echo")]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        validator.validate(deployment, VERSIONS[0], strict=True)
    deployment = yaml.safe_load(yaml.safe_dump(load[("Deployment", "tcp-echo")]))
    deployment["spec"]["replicas"] = "3"
    with pytest.raises(kubernetes_validate.ValidationError):
        validator.validate(deployment, VERSIONS[0], strict=True)


# ---- agreement with compose.yaml


def compose_ports(service: dict[str, Any]) -> set[tuple[int, str]]:
    ports = set()
    for spec in service.get("ports", []):
        target = spec.rsplit(":", 1)[-1]
        number, _, protocol = target.partition("/")
        ports.add((int(number), (protocol or "tcp").upper()))
    return ports


def mebibytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([a-zA-Z]*)", str(value)).groups()  # type: ignore[union-attr]
    return int(number) * {"m": 1, "mi": 1, "g": 1024, "gi": 1024}[unit.lower()]


@pytest.mark.parametrize("name", [*BACKENDS, "web", *LOAD])
def test_each_deployment_agrees_with_its_compose_service(
    name: str, compose: dict, load: dict
) -> None:
    service = compose["services"][name]
    ctr = container(load, name)
    pod = load[("Deployment", name)]["spec"]["template"]["spec"]
    # the image compose builds: <project name>-<service>
    assert ctr["image"] == f"{compose['name']}-{name}:latest"
    # the in-network ports compose publishes (Locust's master also serves its workers),
    # and each service's metrics port (never published by compose: the front reads it)
    k8s_ports = {(p["containerPort"], p["protocol"]) for p in ctr.get("ports", [])}
    assert compose_ports(service) <= k8s_ports
    if name not in LOAD:
        assert k8s_ports == compose_ports(service) | {(METRICS_PORTS[name], "TCP")}
    # limits and hardening
    limits = ctr["resources"]["limits"]
    assert mebibytes(limits["memory"]) == mebibytes(service["mem_limit"])
    assert float(limits["cpu"]) == float(service["cpus"])
    assert mebibytes(ctr["resources"]["requests"]["memory"]) <= mebibytes(limits["memory"])
    user, group = (int(x) for x in service["user"].split(":"))
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        user,
        group,
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = ctr["securityContext"]
    assert security["readOnlyRootFilesystem"] is service["read_only"]
    assert security["capabilities"]["drop"] == service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert security["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # else k8s sets TCP_ECHO_PORT=tcp://...
    assert pod["terminationGracePeriodSeconds"] == int(service["stop_grace_period"].rstrip("s"))
    sysctls = {s["name"]: s["value"] for s in pod["securityContext"].get("sysctls", [])}
    assert sysctls == {k: str(v) for k, v in (service.get("sysctls") or {}).items()}
    # /tmp: the same size of memory-backed scratch space
    (tmpfs,) = service["tmpfs"]
    size = re.search(r"size=(\w+)", tmpfs)[1]  # type: ignore[index]
    (volume,) = pod["volumes"]
    assert volume["emptyDir"]["medium"] == "Memory"
    assert mebibytes(volume["emptyDir"]["sizeLimit"]) == mebibytes(size)
    assert ctr["volumeMounts"] == [{"name": volume["name"], "mountPath": tmpfs.split(":")[0]}]
    # the same healthcheck command for the probes; the same command line
    check = service["healthcheck"]["test"][1:]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ctr[probe]["exec"]["command"] == check, probe
    assert ctr.get("args") == service.get("command")
    # and compose's timing: readiness as its healthcheck, startup covering its start period
    timing = service["healthcheck"]
    seconds = {  # a variable's default where compose reads one: ${VAR:-30s}
        k: int(str(timing[k]).rpartition("-")[2].rstrip("s}"))
        for k in ("interval", "timeout", "start_period")
    }
    ready = ctr["readinessProbe"]
    assert (ready["periodSeconds"], ready["timeoutSeconds"], ready["failureThreshold"]) == (
        seconds["interval"],
        seconds["timeout"],
        timing["retries"],
    )
    startup = ctr["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= seconds["start_period"]
    assert ctr["livenessProbe"]["timeoutSeconds"] == seconds["timeout"]


def test_the_configmaps_hold_exactly_compose_variables(compose: dict, load: dict) -> None:
    defaults = documented_defaults()
    env = {
        **load[("ConfigMap", "polyloop-env")]["data"],
        **load[("ConfigMap", "polyloop-load")]["data"],
    }
    env["LOG_LEVEL"] = rendered("base")[("ConfigMap", "polyloop-env")]["data"]["LOG_LEVEL"]
    expected: dict[str, str] = {}
    for service in compose["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if value is None:  # compose passes the host's value: the documented default
                expected[name] = defaults.get(name, "")
            elif (m := re.fullmatch(r"\$\{\w+:-(.*)\}", str(value))) is not None:
                expected[name] = m[1]
            else:
                expected[name] = str(value)
    # where the cluster is not compose: the front is reached through a Service, beyond
    # loopback, so its fault API keeps its default (off) and nothing is published by compose
    for name, value in K8S_OWN.items():
        if value is None:
            expected.pop(name, None)
        else:
            expected[name] = value
    assert env == expected
    for overlay in OVERLAYS:
        for name in [*BACKENDS, "web"]:
            assert container(rendered(overlay), name)["envFrom"] == [
                {"configMapRef": {"name": "polyloop-env"}}
            ]


def test_the_token_comes_from_a_secret_that_is_never_in_the_tree(load: dict) -> None:
    """Every pod of the stack reads POLYLOOP_ADMIN_TOKEN from the Secret
    polyloop-admin-token (optional: without it a pod runs, its faults cannot be changed);
    no manifest holds a Secret, nor the token in a ConfigMap."""
    for overlay in OVERLAYS:
        resources = rendered(overlay)
        assert not [key for key in resources if key[0] == "Secret"], overlay
        for kind, name in resources:
            if kind == "ConfigMap":
                assert "POLYLOOP_ADMIN_TOKEN" not in resources[(kind, name)]["data"]
        for name in NAMES:
            (token,) = container(resources, name)["env"]
            assert token == {
                "name": "POLYLOOP_ADMIN_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": "polyloop-admin-token",
                        "key": "token",
                        "optional": True,
                    }
                },
            }, name
        for name in LOAD:
            if ("Deployment", name) in resources:  # Locust never needs it
                env = container(resources, name).get("env", [])
                assert all(e["name"] != "POLYLOOP_ADMIN_TOKEN" for e in env)


def test_backend_services_are_headless_and_match_the_pods(load: dict) -> None:
    for name in [*BACKENDS, "web", *LOAD[:1]]:
        service = load[("Service", name)]["spec"]
        ports = {(p["name"], p["protocol"]) for p in container(load, name)["ports"]}
        assert {(p["targetPort"], p["protocol"]) for p in service["ports"]} == ports
        assert service["selector"] == {"app.kubernetes.io/name": name}
        assert (service.get("clusterIP") == "None") is (name in BACKENDS), name


def test_the_network_policy_admits_only_the_front_and_locust_to_backends(load: dict) -> None:
    policies = [r for (kind, _), r in load.items() if kind == "NetworkPolicy"]
    labels = {
        name: load[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        for name in [*BACKENDS, "web", *LOAD]
    }

    def selects(selector: dict, pod_labels: dict) -> bool:
        exact = all(pod_labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
        for expression in selector.get("matchExpressions", []):
            assert expression["operator"] == "In", expression  # the only one used here
            exact = exact and pod_labels.get(expression["key"]) in expression["values"]
        return exact

    def admitted(client: str, backend: str, port: int, protocol: str) -> bool:
        for policy in policies:
            if not selects(policy["spec"]["podSelector"], labels[backend]):
                continue
            for rule in policy["spec"].get("ingress", []):
                sources = rule.get("from")
                if sources is not None and not any(
                    selects(s["podSelector"], labels[client]) for s in sources
                ):
                    continue
                if any(
                    (p["port"], p["protocol"]) == (port, protocol) for p in rule.get("ports", [])
                ):
                    return True
        return False

    # every pod is under a default deny
    deny = [p for p in policies if "ingress" not in p["spec"]]
    assert all(any(selects(p["spec"]["podSelector"], lab) for p in deny) for lab in labels.values())
    for backend in BACKENDS:
        for port in container(load, backend)["ports"]:
            if port["name"] == "metrics":
                continue
            spec = (port["containerPort"], port["protocol"])
            assert admitted("web", backend, *spec)
            assert admitted("locust-worker", backend, *spec)
            assert not admitted("udp-echo", backend, *spec)
            assert admitted("resolver", backend, *spec) is (backend == "dns")
    assert admitted("dns", "web", 8080, "TCP")  # the front admits anyone
    # the metrics ports: the front only (it scrapes every service, itself included)
    for name, port in METRICS_PORTS.items():
        assert admitted("web", name, port, "TCP"), name
        assert not admitted("locust-worker", name, port, "TCP"), name
        assert not admitted("resolver", name, port, "TCP"), name


# ---- the stack catalogue: every other list of the services agrees with it


def test_compose_runs_exactly_the_catalogue(compose: dict) -> None:
    always = {n for n, svc in compose["services"].items() if not svc.get("profiles")}
    assert always == set(NAMES)
    network = compose["x-env"]
    for s in SERVICES:
        svc = compose["services"][s.name]
        assert svc["build"]["target"] == s.name
        assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", s.healthcheck]
        assert set(svc.get("depends_on") or {}) == set(s.depends_on), s.name
        address = f"${{POLYLOOP_BIND:-127.0.0.1}}:${{{s.port_variable}:-{s.port}}}"
        published = {f"{address}:{s.container_port}/{p}" for p in s.transport.split("+")}
        if s.transport == "tcp":  # written without its protocol, compose's default
            published = {f"{address}:{s.container_port}"}
        assert set(svc["ports"]) == published, s.name
        # where every service is reached inside the network, and its control port
        assert network[s.host_variable] == s.name
        assert network[s.port_variable] == str(s.container_port)
        assert network[s.metrics_port_variable] == str(s.metrics_port)
    pypy = yaml.safe_load((ROOT / "compose.pypy.yaml").read_text())["services"]
    assert set(pypy) == {s.name for s in SERVICES if s.pypy}


def test_the_manifests_and_their_configmap_run_exactly_the_catalogue(load: dict) -> None:
    deployments = {name for kind, name in load if kind == "Deployment"}
    assert deployments - set(LOAD) == set(NAMES)
    env = load[("ConfigMap", "polyloop-env")]["data"]
    for s in SERVICES:
        ports = {p["containerPort"] for p in container(load, s.name)["ports"]}
        assert ports == {s.container_port, s.metrics_port}, s.name
        assert (env[s.host_variable], env[s.port_variable]) == (s.name, str(s.container_port))
        assert env[s.metrics_port_variable] == str(s.metrics_port)


def test_the_readme_names_every_service_with_its_port_and_loop() -> None:
    text = (ROOT / "README.md").read_text()
    for s in SERVICES:
        row = next((line for line in text.splitlines() if line.startswith(f"- `{s.name}` (")), "")
        assert row, f"no line for {s.name} in the README's list of services"
        assert f"{s.port}/{s.transport}" in row, row
        assert s.framework.split()[0].lower() in row.lower(), row
