"""`--config settings.toml`: a command's options, and the settings no one changes per run, read from a TOML file.

Keys: long option names with underscores (`--batch-size 32` -> `batch_size = 32`) plus declared settings; flags
win over the file; a bad key or value is refused in one line. Imports nothing of ours.
"""
from __future__ import annotations

import argparse
import dataclasses
import tomllib
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Setting:
    """A setting that only a --config file sets: its default, help (ending "(default: X)") and kind of value."""

    default: Any
    help: str
    type: Callable[[str], Any] | None = None  # parses one value given as text; None: a string, or a bool default
    choices: tuple | None = None
    many: bool = False  # a list of values

    @property
    def nargs(self) -> int | str | None:
        """As argparse would say it: 0 for a true/false flag, "*" for a list."""
        return 0 if self.type is None and isinstance(self.default, bool) else "*" if self.many else None


def yes_no(text: str) -> bool:
    """A yes|no option's value (true/false too, as a settings file writes it) -> bool."""
    found = {"yes": True, "true": True, "no": False, "false": False}.get(str(text).strip().lower())
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r}: choose yes or no")
    return found


def declare(parser: argparse.ArgumentParser, **settings: Setting) -> None:
    """Make `settings` known to `parser`'s --config file; the parsed namespace holds their defaults until then."""
    parser.config_only = {**getattr(parser, "config_only", {}), **settings}
    parser.set_defaults(**{key: s.default for key, s in settings.items()})


def key_of(action: argparse.Action) -> str | None:
    """The settings-file key of an option (`--final-relu` -> final_relu); None for positionals."""
    long = [o for o in action.option_strings if o.startswith("--")]
    return long[0][2:].replace("-", "_") if long else None


def read(path: str, parser: argparse.ArgumentParser, command: str) -> dict[str, Any]:
    """{dest: value} for `parser` from the TOML file at `path`; a one-line ValueError for anything it cannot use."""
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such settings file; check --config") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not a TOML file ({e}); fix it (key = value lines)") from None
    known = {key_of(a): a for a in parser._actions if key_of(a) not in (None, "help", "config")}
    known.update(getattr(parser, "config_only", {}))
    found = {}
    for key, value in table.items():
        if key not in known:
            raise ValueError(f"{path}: unknown key {key!r} for vggish-jax {command}; the keys it takes: "
                             f"{', '.join(sorted(known))}")
        target = known[key]
        dest = key if isinstance(target, Setting) else target.dest
        found[dest] = _value(value, target, f"{path}: {key} = {value!r}")
    return found


def _value(value: Any, target: argparse.Action | Setting, where: str) -> Any:
    if target.nargs == 0:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: takes true or false")
        return (not value) if isinstance(target, argparse._StoreFalseAction) else value
    if target.nargs in ("*", "+"):
        if not isinstance(value, list):
            raise ValueError(f"{where}: takes a list, e.g. [\"a\", \"b\"]")
        return [_one(v, target, where) for v in value]
    return _one(value, target, where)


def _one(value: Any, target: argparse.Action | Setting, where: str) -> Any:
    if isinstance(value, (list, dict)) or isinstance(value, bool) and target.type is not yes_no:
        raise ValueError(f"{where}: takes one value (a number or a string)")
    try:
        parsed = target.type(str(value)) if target.type else str(value)
    except (argparse.ArgumentTypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None
    if target.choices and parsed not in target.choices:
        raise ValueError(f"{where}: takes one of {', '.join(map(str, target.choices))}")
    return parsed
