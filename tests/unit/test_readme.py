"""The README stays true: every variable the services read is documented, every `make`
target it names exists, every file it points at is there."""

from __future__ import annotations

import re

from services.common.settings import declared
from services.dns.config import DnsConfig
from services.resolver.config import ResolverConfig
from services.tcp_echo.config import TcpEchoConfig
from services.udp_echo.config import UdpEchoConfig
from services.web.config import WebConfig
from tests.stack import ROOT

README = (ROOT / "README.md").read_text()


def variables_read_by_the_services() -> set[str]:
    configs = (TcpEchoConfig, UdpEchoConfig, ResolverConfig, DnsConfig, WebConfig)
    return {setting.variable for config in configs for setting in declared(config)}


def test_every_variable_a_service_reads_is_in_the_readme() -> None:
    names = variables_read_by_the_services()
    assert len(names) > 20, "the scan found too few variables: has config moved?"
    assert sorted(name for name in names if f"`{name}`" not in README) == []


def test_every_make_target_in_the_readme_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", README))
    assert named, "no make command found in the README"
    assert sorted(named - targets) == []


def test_every_compose_variable_is_in_the_readme() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", compose))
    names |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]+):\s*$", compose, re.MULTILINE))
    assert sorted(name for name in names if f"`{name}`" not in README) == []
