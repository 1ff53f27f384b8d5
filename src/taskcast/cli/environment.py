"""Options of ``serve`` and ``worker`` that also come from the environment (``TASKCAST_*``).

A flag on the command line wins over its variable, which wins over the default. Every such
option says its variable in ``--help``. A variable that does not parse is refused by name.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import TaskcastError

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})


class BadEnvironment(TaskcastError):
    """A ``TASKCAST_*`` variable holds a value its option does not take."""

    code = "bad_environment"


@dataclass(frozen=True, slots=True)
class EnvOption:
    dest: str
    variable: str
    convert: Callable[[str], Any]
    default: Any
    choices: Sequence[str] | None = None
    flag: bool = False


class EnvOptions:
    """Adds options to a parser with a ``TASKCAST_*`` variable each; ``resolve`` fills them."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.options: list[EnvOption] = []

    def add(
        self,
        flag: str,
        help: str,
        *,
        type: Callable[[str], Any] = str,
        default: Any = None,
        choices: Sequence[str] | None = None,
        metavar: str | None = None,
    ) -> None:
        """A valued option (``--port 8000``) read from ``TASKCAST_PORT`` when not given."""
        dest = flag.removeprefix("--").replace("-", "_")
        variable = "TASKCAST_" + dest.upper()
        shown = f" (default {default})" if default is not None else ""
        self.parser.add_argument(
            flag,
            type=type,
            choices=choices,
            metavar=metavar,
            default=None,
            help=f"{help}{shown}; env {variable}",
        )
        self.options.append(EnvOption(dest, variable, type, default, choices))

    def repeat(self, flag: str, help: str, *, metavar: str | None = None) -> None:
        """A repeatable option (``--allowed-host a --allowed-host b``), read when not given
        from its variable as a comma-separated list (``TASKCAST_ALLOWED_HOST=a,b``)."""
        dest = flag.removeprefix("--").replace("-", "_")
        variable = "TASKCAST_" + dest.upper()
        self.parser.add_argument(
            flag,
            action="append",
            metavar=metavar,
            default=None,
            help=f"{help} (repeat it for more); env {variable} (comma-separated)",
        )
        self.options.append(EnvOption(dest, variable, _comma_separated, []))

    def switch(self, flag: str, help: str) -> None:
        """An on/off flag (``--no-demo``) also turned on by ``TASKCAST_NO_DEMO=1``."""
        dest = flag.removeprefix("--").replace("-", "_")
        variable = "TASKCAST_" + dest.upper()
        self.parser.add_argument(
            flag, action="store_true", default=None, help=f"{help}; env {variable}=1"
        )
        self.options.append(EnvOption(dest, variable, str, False, flag=True))

    def resolve(self, options: argparse.Namespace) -> None:
        """Fill every option not given on the command line from its variable, else its default.
        Raises ``BadEnvironment`` naming the variable and what it takes."""
        for option in self.options:
            if getattr(options, option.dest) is not None:
                continue
            text = os.environ.get(option.variable)
            setattr(options, option.dest, option.default if text is None else _parse(option, text))


def _comma_separated(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse(option: EnvOption, text: str) -> Any:
    if option.flag:
        if text.strip().lower() in TRUE:
            return True
        if text.strip().lower() in FALSE:
            return False
        raise BadEnvironment(f"{option.variable}={text!r}: use 1 or 0 (true/false, yes/no)")
    if option.choices is not None and text not in option.choices:
        raise BadEnvironment(f"{option.variable}={text!r}: use one of {', '.join(option.choices)}")
    try:
        return option.convert(text)
    except ValueError:
        kind = getattr(option.convert, "__name__", "value")
        raise BadEnvironment(f"{option.variable}={text!r} is not a valid {kind}") from None


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (RFC 3339, UTC), ``level``, ``logger``, ``message``,
    and ``exception`` with the traceback when there is one, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str) -> None:
    """Root logging at ``level`` in ``text`` (human) or ``json`` (one object a line)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
