"""Every service's configuration, checked from its declarations: unset is the default, every
variable reaches its field, a bad value is refused naming its variable; then the rules of
each service that are more than a range (a zone file that exists, the front's copy of its
backends' limits, a cap on the resolver's default timeout)."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.config_docs import config_class
from services.common import limits
from services.common.catalogue import SERVICES
from services.common.settings import ConfigError, Setting, Settings, declared
from services.dns.config import DnsConfig
from services.resolver.config import ResolverConfig
from services.udp_echo.config import UdpEchoConfig
from services.web.config import WebConfig
from tests.stack import ROOT

CONFIGS: dict[str, type[Settings]] = {s.name: config_class(s) for s in SERVICES}
TOKEN = secrets.token_urlsafe(16)


def read(config: Settings) -> dict[str, Any]:
    """Each variable's value in ``config`` (its groups' included)."""
    found: dict[str, Any] = {}
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        if "setting" in f.metadata:
            found[f.metadata["setting"].variable] = getattr(config, f.name)
        elif "group" in f.metadata:
            found |= read(getattr(config, f.name))
    return found


def another_value(setting: Setting, tmp_path: Path) -> tuple[str, Any]:
    """A valid value other than the default: (as written in the environment, as read)."""
    if setting.kind is bool:
        return ("0", False) if setting.default else ("1", True)
    if setting.choices:
        other = next(c for c in setting.choices if c != setting.default)
        return other.swapcase(), other  # any case is accepted
    if setting.kind in (int, float):
        value = setting.default + 1
        if setting.maximum is not None and value > setting.maximum:
            value = (setting.default + setting.minimum) / 2
        value = setting.kind(value)
        return str(value), value
    if issubclass(setting.kind, Path):
        other = tmp_path / "other"
        other.write_text("")
        return str(other), other
    return "somewhere-else", "somewhere-else"


def bad_values(setting: Setting) -> list[str]:
    if setting.kind is bool:
        return ["yes", "2"]
    if setting.choices:
        return ["nonsense"]
    if setting.kind not in (int, float):
        return []
    bad = ["lots", "nan"] if setting.kind is float else ["lots", "1.5"]
    if setting.minimum is not None:
        bad.append(str(setting.minimum - 1))
    if setting.maximum is not None:
        bad.append(str(setting.maximum + 1))
    return bad


@pytest.mark.parametrize("name", CONFIGS)
def test_unset_is_the_declared_default(name: str) -> None:
    config = CONFIGS[name].from_env({})
    assert config == CONFIGS[name]()
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        assert "setting" in f.metadata or "group" in f.metadata, f"{f.name} is read from nowhere"
    settings = {s.variable: s for s in declared(CONFIGS[name])}
    assert read(config) == {variable: s.default for variable, s in settings.items()}
    for s in settings.values():  # the field's type is the one the variable is parsed as
        assert s.default is None or isinstance(s.default, s.kind), s.variable


@pytest.mark.parametrize("name", CONFIGS)
def test_every_variable_reaches_its_field(name: str, tmp_path: Path) -> None:
    values = {s.variable: another_value(s, tmp_path) for s in declared(CONFIGS[name])}
    config = CONFIGS[name].from_env({variable: raw for variable, (raw, _) in values.items()})
    assert read(config) == {variable: value for variable, (_, value) in values.items()}


@pytest.mark.parametrize(
    ("name", "variable", "raw"),
    [
        (name, s.variable, raw)
        for name, config in CONFIGS.items()
        for s in declared(config)
        for raw in bad_values(s)
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(name: str, variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}="):
        CONFIGS[name].from_env({variable: raw})


@pytest.mark.parametrize("name", CONFIGS)
def test_log_level_in_any_case_and_the_token_in_no_repr(name: str) -> None:
    config = CONFIGS[name].from_env({"LOG_LEVEL": "debug", "POLYLOOP_ADMIN_TOKEN": TOKEN})
    assert config.log_level == "DEBUG"  # type: ignore[attr-defined]
    assert config.metrics.admin_token == TOKEN  # type: ignore[attr-defined]
    assert TOKEN not in repr(config)


def test_the_zone_file_must_exist() -> None:
    with pytest.raises(ConfigError, match=r"^DNS_ZONE_FILE='/nowhere': no such file"):
        DnsConfig.from_env({"DNS_ZONE_FILE": "/nowhere"})


def test_the_resolvers_default_timeout_is_capped_by_its_maximum() -> None:
    assert ResolverConfig().default_timeout == limits.DEFAULT_RESOLVE_TIMEOUT
    assert ResolverConfig.from_env({"RESOLVER_MAX_TIMEOUT": "2"}).default_timeout == 2.0


def test_the_front_reads_its_backends_limits_as_they_declare_them() -> None:
    shared = {"RESOLVER_MAX_NAMES", "RESOLVER_MAX_TIMEOUT", "RESOLVER_MAX_CONNECTIONS"}
    web = {s.variable: s for s in declared(WebConfig)}
    for backend, names in ((ResolverConfig, shared), (UdpEchoConfig, {"UDP_ECHO_MAX_DATAGRAM"})):
        own = {s.variable: s for s in declared(backend)}
        for variable in names:
            assert web[variable] is own[variable]  # the same declaration, not a copy
    env = {
        "RESOLVER_MAX_NAMES": "7",
        "RESOLVER_MAX_TIMEOUT": "2.5",
        "RESOLVER_MAX_CONNECTIONS": "10",
        "UDP_ECHO_MAX_DATAGRAM": "512",
        "WEB_MAX_MESSAGE": "1000",
    }
    config = WebConfig.from_env(env)
    assert (config.resolver_max_names, config.resolve_default_timeout) == (7, 2.5)
    assert config.resolver_pool_size == 5  # half the resolver's connections
    assert config.udp_max_message == 512  # one datagram udp-echo does not drop
    assert WebConfig().udp_max_message == 4096
    assert WebConfig().resolver_pool_size == 50


def test_compose_passes_the_backend_limits_to_web() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for setting, backend in (
        (limits.RESOLVER_MAX_NAMES, "resolver"),
        (limits.RESOLVER_MAX_TIMEOUT, "resolver"),
        (limits.RESOLVER_MAX_CONNECTIONS, "resolver"),
        (limits.UDP_ECHO_MAX_DATAGRAM, "udp-echo"),
    ):
        assert setting.variable in compose["web"]["environment"]
        assert setting.variable in compose[backend]["environment"]
