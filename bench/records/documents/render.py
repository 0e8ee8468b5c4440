"""Documents from Jinja2 templates: ours, or a lab's own certificate template in the same environment.

Autoescaping is on and undefined names are errors, so a record value can never become markup and a
misspelt variable in a lab's template stops publishing instead of printing nothing. A lab's template
may ``{% extends "base.html.j2" %}`` to keep the print layout, the footer and the signature slots.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    FunctionLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
)
from markupsafe import Markup

from bench.datafiles import ConfigError

TEMPLATES = Path(__file__).parent / "templates"
LAB_TEMPLATE = "lab certificate template"  # the name a lab's file is loaded under: no file of ours has it


def css_string(text: str) -> Markup:
    """Text as a quoted CSS string (for the page footer's ``content``), safe inside <style>."""
    escaped = "".join(f"\\{ord(c):x} " if c in '"\\<>\n\r' else c for c in str(text))
    return Markup(f'"{escaped}"')


def environment(lab_template: Path | None = None) -> Environment:
    """Our templates, plus the lab's certificate template under ``LAB_TEMPLATE`` when given."""
    loaders: list[Any] = [FileSystemLoader(TEMPLATES)]
    if lab_template is not None:
        loaders.insert(0, FunctionLoader(lambda name: _read(lab_template) if name == LAB_TEMPLATE else None))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["css_string"] = css_string
    return env


def _read(path: Path) -> tuple[str, str, Any]:
    try:
        return path.read_text(encoding="utf-8"), str(path), lambda: False
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ConfigError(f"{path}: cannot read the certificate template: {reason}") from None


def check_template(path: Path) -> None:
    """Refuse a lab template that is missing or does not compile, before anything is measured."""
    _lab_call(path, lambda: environment(path).get_template(LAB_TEMPLATE))


def render(env: Environment, name: str, context: dict[str, Any], lab_template: Path | None = None) -> str:
    """``name``'s HTML; a failure in the lab's template is a one-line ConfigError naming its file."""
    if name != LAB_TEMPLATE or lab_template is None:
        return env.get_template(name).render(context)
    return _lab_call(lab_template, lambda: env.get_template(name).render(context))


def _lab_call(path: Path, call: Any) -> Any:
    try:
        return call()
    except ConfigError:
        raise
    except TemplateSyntaxError as error:
        where = error.filename or path
        raise ConfigError(f"{where}: line {error.lineno}: certificate template: {_one_line(error.message)}") from None
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as error:
        lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
        at = f" line {lines[-1]}:" if lines else ""
        raise ConfigError(f"{path}:{at} certificate template: "
                          f"{type(error).__name__}: {_one_line(str(error))}") from None


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())
