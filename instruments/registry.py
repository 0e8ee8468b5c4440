"""Drivers register through a Python entry-point group, so a lab ships its own in its own package.

A distribution declares, in its pyproject.toml::

    [project.entry-points."meter_bench.drivers"]
    my-source = "my_lab.drivers:MySource"

The entry point's name is what a profile writes (``driver = "my-source"``); the class declares
``ROLES`` (the roles it can fill), ``CAPABILITIES``, ``MANUAL`` (the document it follows) and
``from_settings``. ``bench drivers`` lists what is installed.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from instruments.roles import ROLES, missing_members

GROUP = "meter_bench.drivers"


@dataclass(frozen=True)
class DriverSettings:
    """What the profile gives a driver: where it is and how far the lab narrows its ranges."""

    address: str
    name: str  # the role(s) it fills, for messages: "source", "source+load+reference"
    timeout_s: float = 2.0
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # driver-specific, e.g. a serial baud rate


@dataclass(frozen=True)
class DriverInfo:
    name: str
    cls: Any  # a driver class: ROLES, CAPABILITIES, MANUAL, from_settings
    distribution: str

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for r in ROLES if r in self.cls.ROLES)

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(sorted(str(c) for c in self.cls.CAPABILITIES))

    @property
    def manual(self) -> str:
        return str(self.cls.MANUAL)

    def create(self, settings: DriverSettings) -> Any:
        return self.cls.from_settings(settings)


class DriverError(ValueError):
    """A driver that is not installed, or cannot be what its entry point says."""


@functools.cache
def drivers() -> dict[str, DriverInfo]:
    """Every installed driver by name; a broken one is an error naming its entry point."""
    found: dict[str, DriverInfo] = {}
    for point in entry_points(group=GROUP):
        try:
            cls = point.load()
        except Exception as error:  # noqa: BLE001 - a lab's broken package must name itself
            raise DriverError(f"driver '{point.name}' ({point.value}) does not load: {error}") from None
        check_driver_class(point.name, cls)
        found[point.name] = DriverInfo(point.name, cls, point.dist.name if point.dist else "?")
    return found


def check_driver_class(name: str, cls: Any) -> None:
    for attribute in ("ROLES", "CAPABILITIES", "MANUAL", "from_settings"):
        if not hasattr(cls, attribute):
            raise DriverError(f"driver '{name}' ({getattr(cls, '__name__', cls)}) does not declare {attribute}")
    for role in cls.ROLES:
        if role not in ROLES:
            raise DriverError(f"driver '{name}' declares an unknown role '{role}' (roles: {', '.join(ROLES)})")
        missing = missing_members(cls, role)
        if missing:
            raise DriverError(f"driver '{name}' claims the {role} role but lacks {', '.join(missing)}")


def driver(name: str, role: str) -> DriverInfo:
    """The installed driver of that name, able to fill that role."""
    known = drivers()
    if name not in known:
        fitting = sorted(n for n, d in known.items() if role in d.roles)
        raise DriverError(f"no driver '{name}' is installed (for the {role}: {', '.join(fitting) or 'none'}); "
                          f"`bench drivers` lists them")
    info = known[name]
    if role not in info.roles:
        raise DriverError(f"driver '{name}' cannot be the {role} (it fills: {', '.join(info.roles)})")
    return info
