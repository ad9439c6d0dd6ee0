"""WebConfig: README defaults, environment overrides, clear errors for bad values."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError
from services.web.config import WebConfig


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
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        WebConfig.from_env({name: value})
