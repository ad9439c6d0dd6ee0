"""tcp-echo's configuration: README defaults, and a clear ConfigError for a bad value."""

from __future__ import annotations

import pytest

from services.common.settings import ConfigError
from services.tcp_echo.__main__ import endpoint_description
from services.tcp_echo.config import TcpEchoConfig


def test_defaults_match_the_readme() -> None:
    assert TcpEchoConfig.from_env({}) == TcpEchoConfig(
        listen_host="127.0.0.1",
        port=8000,
        max_connections=1024,
        idle_timeout=300.0,
        drain_seconds=2.0,
        log_level="INFO",
    )


def test_reads_every_variable() -> None:
    config = TcpEchoConfig.from_env(
        {
            "LISTEN_HOST": "0.0.0.0",
            "TCP_ECHO_PORT": "18000",
            "TCP_ECHO_MAX_CONNECTIONS": "3",
            "TCP_ECHO_IDLE_TIMEOUT": "0.5",
            "TCP_ECHO_DRAIN_SECONDS": "0",
            "LOG_LEVEL": "debug",
        }
    )
    assert config == TcpEchoConfig("0.0.0.0", 18000, 3, 0.5, 0.0, "DEBUG")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TCP_ECHO_PORT", "0"),
        ("TCP_ECHO_PORT", "eighty"),
        ("TCP_ECHO_MAX_CONNECTIONS", "0"),
        ("TCP_ECHO_IDLE_TIMEOUT", "-1"),
        ("TCP_ECHO_DRAIN_SECONDS", "soon"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        TcpEchoConfig.from_env({name: value})


def test_endpoint_string_quotes_an_ipv6_interface() -> None:
    assert endpoint_description(TcpEchoConfig(listen_host="::")) == (
        "tcp:port=8000:interface=\\:\\::backlog=1024"
    )
