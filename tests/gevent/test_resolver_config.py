"""``ResolverConfig.from_env``: defaults that work, every variable read, bad values named."""

from __future__ import annotations

import pytest

from services.common.settings import ConfigError
from services.resolver.config import ResolverConfig


def test_defaults() -> None:
    config = ResolverConfig.from_env({})
    assert config == ResolverConfig()
    assert (config.listen_host, config.port) == ("127.0.0.1", 8053)
    assert (config.dns_host, config.dns_port) == ("127.0.0.1", 1053)
    assert config.backend == "dnspython"
    assert (config.max_lookups, config.external, config.request_timeout) == (256, False, 10.0)
    assert (config.max_names, config.max_timeout, config.max_body) == (256, 30.0, 65536)
    assert config.default_timeout == 5.0


def test_every_variable_is_read() -> None:
    config = ResolverConfig.from_env(
        {
            "LISTEN_HOST": "0.0.0.0",
            "RESOLVER_PORT": "18053",
            "DNS_HOST": "dns",
            "DNS_PORT": "53",
            "RESOLVER_BACKEND": "ThreadPool",
            "RESOLVER_POOL_SIZE": "10",
            "RESOLVER_MAX_LOOKUPS": "7",
            "RESOLVER_EXTERNAL": "1",
            "RESOLVER_MAX_NAMES": "20",
            "RESOLVER_MAX_TIMEOUT": "2",
            "RESOLVER_MAX_BODY": "2048",
            "RESOLVER_MAX_CONNECTIONS": "5",
            "RESOLVER_CLIENT_TIMEOUT": "4",
            "RESOLVER_REQUEST_TIMEOUT": "3",
            "RESOLVER_DRAIN_SECONDS": "1.5",
            "LOG_LEVEL": "debug",
        }
    )
    assert config == ResolverConfig(
        listen_host="0.0.0.0",
        port=18053,
        dns_host="dns",
        dns_port=53,
        backend="threadpool",
        pool_size=10,
        max_lookups=7,
        external=True,
        max_names=20,
        max_timeout=2.0,
        max_body=2048,
        max_connections=5,
        client_timeout=4.0,
        request_timeout=3.0,
        drain_seconds=1.5,
        log_level="DEBUG",
    )
    assert config.default_timeout == 2.0  # never above the cap


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RESOLVER_PORT", "0"),
        ("DNS_PORT", "dns"),
        ("RESOLVER_BACKEND", "ares"),
        ("RESOLVER_POOL_SIZE", "0"),
        ("RESOLVER_MAX_LOOKUPS", "0"),
        ("RESOLVER_EXTERNAL", "yes"),
        ("RESOLVER_REQUEST_TIMEOUT", "0"),
        ("RESOLVER_MAX_NAMES", "-3"),
        ("RESOLVER_MAX_TIMEOUT", "soon"),
        ("RESOLVER_MAX_BODY", "10"),
        ("RESOLVER_DRAIN_SECONDS", "999"),
        ("LOG_LEVEL", "chatty"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        ResolverConfig.from_env({variable: value})
