"""UdpEchoConfig.from_env: README defaults, and a clear ConfigError for bad values."""

from __future__ import annotations

import pytest

from services.common.settings import ConfigError
from services.udp_echo.config import UdpEchoConfig


def test_defaults() -> None:
    assert UdpEchoConfig.from_env({}) == UdpEchoConfig(
        listen_host="127.0.0.1",
        port=9999,
        max_datagram=4096,
        rate_limit=0,
        max_sources=10_000,
        stats_interval=10.0,
        log_level="INFO",
    )


def test_reads_every_variable() -> None:
    config = UdpEchoConfig.from_env(
        {
            "LISTEN_HOST": "0.0.0.0",
            "UDP_ECHO_PORT": "19999",
            "UDP_ECHO_MAX_DATAGRAM": "512",
            "UDP_ECHO_RATE_LIMIT": "100",
            "UDP_ECHO_MAX_SOURCES": "50",
            "UDP_ECHO_STATS_INTERVAL": "0",
            "UDP_ECHO_LOOP": "uvloop",
            "LOG_LEVEL": "debug",
        }
    )
    assert config == UdpEchoConfig("0.0.0.0", 19999, 512, 100, 50, 0.0, "uvloop", "DEBUG")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UDP_ECHO_PORT", "0"),
        ("UDP_ECHO_PORT", "nine"),
        ("UDP_ECHO_MAX_DATAGRAM", "0"),
        ("UDP_ECHO_MAX_DATAGRAM", "70000"),
        ("UDP_ECHO_RATE_LIMIT", "-1"),
        ("UDP_ECHO_MAX_SOURCES", "0"),
        ("UDP_ECHO_STATS_INTERVAL", "-5"),
        ("UDP_ECHO_LOOP", "trio"),
        ("LOG_LEVEL", "chatty"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        UdpEchoConfig.from_env({name: value})
