"""WebConfig: README defaults, environment overrides, clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.common.settings import ConfigError
from services.udp_echo.config import UdpEchoConfig
from services.web.config import WebConfig

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_readme() -> None:
    config = WebConfig.from_env({})
    assert (config.listen_host, config.port) == ("127.0.0.1", 8080)
    assert (config.tcp_echo_host, config.tcp_echo_port) == ("127.0.0.1", 8000)
    assert (config.udp_echo_host, config.udp_echo_port) == ("127.0.0.1", 9999)
    assert (config.resolver_host, config.resolver_port) == ("127.0.0.1", 8053)
    assert (config.dns_host, config.dns_port) == ("127.0.0.1", 1053)
    assert config.backend_timeout == 5.0
    assert config.backend_concurrency == 100
    assert config.max_body == 65536
    assert config.max_message == 8192
    assert config.udp_max_message == 4096
    assert config.max_connections == 1024
    assert config.body_timeout == 10.0
    assert config.log_interval == 10.0
    assert (config.resolver_max_names, config.resolver_max_timeout) == (256, 30.0)
    assert config.resolver_pool_size == 50  # half of RESOLVER_MAX_CONNECTIONS (100)
    assert config == WebConfig()


def test_environment_overrides() -> None:
    config = WebConfig.from_env(
        {
            "LISTEN_HOST": "0.0.0.0",
            "WEB_PORT": "18080",
            "TCP_ECHO_HOST": "tcp-echo",
            "DNS_HOST": "dns",
            "DNS_PORT": "53",
            "WEB_BACKEND_TIMEOUT": "2.5",
            "WEB_MAX_MESSAGE": "1000",
            "WEB_TCP_POOL_SIZE": "4",
            "WEB_UDP_RETRIES": "0",
        }
    )
    assert config.listen_host == "0.0.0.0"
    assert config.port == 18080
    assert config.tcp_echo_host == "tcp-echo"
    assert (config.dns_host, config.dns_port) == ("dns", 53)
    assert config.backend_timeout == 2.5
    assert config.udp_max_message == 1000
    assert config.tcp_pool_size == 4
    assert config.udp_retries == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEB_PORT", "0"),
        ("WEB_PORT", "http"),
        ("WEB_BACKEND_TIMEOUT", "soon"),
        ("WEB_BACKEND_CONCURRENCY", "0"),
        ("WEB_MAX_BODY", "-1"),
        ("UDP_ECHO_PORT", "70000"),
        ("LOG_LEVEL", "chatty"),
        ("WEB_MAX_CONNECTIONS", "0"),
        ("WEB_BODY_TIMEOUT", "0"),
        ("WEB_LOG_INTERVAL", "never"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        WebConfig.from_env({name: value})


def test_the_backend_limits_are_read_from_the_backends_own_variables() -> None:
    env = {
        "RESOLVER_MAX_NAMES": "7",
        "RESOLVER_MAX_TIMEOUT": "2.5",
        "RESOLVER_MAX_CONNECTIONS": "10",
        "UDP_ECHO_MAX_DATAGRAM": "512",
    }
    config = WebConfig.from_env(env)
    assert config.resolver_max_names == 7
    assert config.resolver_max_timeout == 2.5
    assert config.resolve_default_timeout == 2.5
    assert config.resolver_max_connections == 10
    assert config.resolver_pool_size == 5
    assert config.udp_max_datagram == 512
    assert config.udp_max_message == 512
    # the same values the backends themselves accept
    udp = UdpEchoConfig.from_env(env)
    assert udp.max_datagram == config.udp_max_datagram
    with pytest.raises(ConfigError, match="UDP_ECHO_MAX_DATAGRAM"):
        WebConfig.from_env({"UDP_ECHO_MAX_DATAGRAM": "70000"})
    with pytest.raises(ConfigError, match="RESOLVER_MAX_NAMES"):
        WebConfig.from_env({"RESOLVER_MAX_NAMES": "0"})


def test_compose_passes_the_backend_limits_to_web() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    web = compose["services"]["web"]["environment"]
    for name in [
        "RESOLVER_MAX_NAMES",
        "RESOLVER_MAX_TIMEOUT",
        "RESOLVER_MAX_CONNECTIONS",
        "UDP_ECHO_MAX_DATAGRAM",
    ]:
        assert name in web, name
        backend = "udp-echo" if name.startswith("UDP") else "resolver"
        assert name in compose["services"][backend]["environment"], name
