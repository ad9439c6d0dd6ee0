"""deploy/prometheus/ agrees with compose.yaml: one scrape job per service, on the metrics
port compose gives it, and recording rules over the metrics the services export."""

from __future__ import annotations

import yaml

from tests.stack import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
SERVICE_PORTS = {
    "tcp-echo": "TCP_ECHO_METRICS_PORT",
    "udp-echo": "UDP_ECHO_METRICS_PORT",
    "resolver": "RESOLVER_METRICS_PORT",
    "dns": "DNS_METRICS_PORT",
    "web": "WEB_METRICS_PORT",
}


def test_every_service_is_scraped_on_its_compose_metrics_port() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    env = compose["x-env"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    assert jobs == {name: [f"{name}:{env[var]}"] for name, var in SERVICE_PORTS.items()}
    assert set(SERVICE_PORTS) <= set(compose["services"])
    # the metrics ports are never published
    for name in SERVICE_PORTS:
        published = " ".join(compose["services"][name].get("ports", []))
        assert env[SERVICE_PORTS[name]] not in published.split(":")


def test_the_recording_rules_use_the_services_metrics() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"][0]["rules"]
    exprs = {rule["record"]: rule["expr"] for rule in rules}
    assert "polyloop_requests_total" in exprs["job:polyloop_requests:rate30s"]
    assert (
        "polyloop_event_loop_lag_seconds_bucket"
        in exprs["job:polyloop_event_loop_lag_seconds:p99_1m"]
    )
