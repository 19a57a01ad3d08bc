"""The command line's one vocabulary: every option shared by several commands, defined once here, and
`--config settings.toml`, which sets a command's options and the settings no one changes per run.

Each flag has one meaning, default and range rule everywhere, its help ending "(default: X)" (checked by
tests/test_cli_options.py). Settings no one changes per run have no flag, only a `--config` key. File keys are
long option names with underscores (`--batch-size 32` -> `batch_size = 32`) plus declared settings; flags win
over the file; a bad key or value is refused in one line.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import textwrap
import tomllib
from typing import Any, Callable

from vggish_jax.pipeline.placement import RESAMPLE_CHOICES


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


BATCH_SIZE = 64  # examples per device call
# Decode workers: one fewer than the CPUs, leaving one for the process that feeds the device
# (the same rule as vggish_jax.datasets.decode.default_workers, not imported to keep --help fast).
WORKERS = max(1, (os.cpu_count() or 2) - 1)


def at_least(minimum: int):
    """argparse type: a whole number >= minimum; anything else refused in one line, worded one way."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value
    parse.__name__ = f"whole number >= {minimum}"  # argparse names the type in its own messages
    return parse


positive_int = at_least(1)
nonnegative_int = at_least(0)


# -- weights and model ------------------------------------------------------------------------------------------

def weights(p, *, help: str, required: bool = False) -> None:
    p.add_argument("--weights", required=required, metavar="DIR",
                   help=help + (" (required)" if required else " (default: none)"))


def final_relu(p, *, default_means: str = "as recorded with the weights") -> None:
    p.add_argument("--final-relu", type=yes_no, default=None, metavar="yes|no",
                   help=f"ReLU after VGGish's last layer: yes as torchvggish and the paper, no as current TF "
                        f"(default: {default_means})")


def download(p, *, choices: tuple[str, ...], help: str) -> None:
    """--download WHAT: fetch the published files named WHAT (needs internet); one form in every command."""
    p.add_argument("--download", choices=choices, default=None, metavar="|".join(choices),
                   help=help + " (default: none)")


DTYPE = Setting("float32", "compute dtype on the device (bfloat16: faster, embeddings differ in the 3rd digit) "
                           "(default: float32)", choices=("float32", "bfloat16"))


# -- device and decoding -----------------------------------------------------------------------------------------

BATCH_SIZE_SETTING = Setting(BATCH_SIZE, "examples (0.96-s frames) per device call; lower it if the device runs out "
                                         f"of memory (default: {BATCH_SIZE})", type=positive_int)
WORKERS_SETTING = Setting(WORKERS, "audio decode worker processes running beside the device, 0: decode in this "
                                   "process, in turn with it; the default is one fewer than this machine's CPUs "
                                   f"(default: {WORKERS})", type=nonnegative_int)
PAD_HELP = "zero-pad files shorter than one 0.975-s example instead of skipping them"
PAD_SETTING = Setting(False, PAD_HELP + " (default: false)")
# Flags several commands take (add); the Settings above serve a command that takes them from --config only.
FLAGS = {
    "--batch-size": dict(type=positive_int, default=BATCH_SIZE, metavar="N", help=BATCH_SIZE_SETTING.help),
    "--workers": dict(type=nonnegative_int, default=WORKERS, metavar="N", help=WORKERS_SETTING.help),
    "--postprocess": dict(action="store_true", help="apply the PCA + uint8 quantisation of the released embeddings "
                                                    "(needs weights with PCA params)"),
    "--pad": dict(action="store_true", help=PAD_HELP),
}


def add(p, *flags: str) -> None:
    for flag in flags:
        p.add_argument(flag, **FLAGS[flag])


# -- output ------------------------------------------------------------------------------------------------------

def out(p, *, help: str, required: bool = True) -> None:
    p.add_argument("--out", required=required, metavar="DIR",
                   help=f"output folder, created if missing: {help}"
                        + (" (required)" if required else " (default: none)"))


def output_format(p, *, choices: tuple[str, ...], help: str) -> None:
    """--format WHAT: the form of what this command writes; the first choice, its native form, is the default."""
    p.add_argument("--format", choices=choices, default=choices[0], metavar="|".join(choices),
                   help=f"{help} (default: {choices[0]})")


RESAMPLE = Setting("auto", "where audio not at 16 kHz is resampled: host (in the decode workers), device (after a "
                           "native-rate decode) or auto (device on GPU/TPU, host on CPU) (default: auto)",
                   choices=RESAMPLE_CHOICES)


def hop_seconds(text: str) -> float:
    """Setting type: seconds between embedding rows, a positive multiple of the 10 ms frame hop."""
    from vggish_jax.models.vggish import frontend

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    frontend.with_hop(value)  # ValueError, one line, for a hop off the frame grid
    return value


HOP_S = Setting(0.96, "seconds between embedding rows, a multiple of 0.01 (under 0.96 the 0.975-s windows "
                      "overlap; recorded in the output's spec) (default: 0.96)", type=hop_seconds)
PAD_LAST = Setting(False, "keep each file's last partial window, zero-padded, instead of dropping it (a file "
                          "shorter than one window gets one) (default: false)")


# -- multi-host --------------------------------------------------------------------------------------------------

def distributed(p) -> None:
    """--distributed, and the three settings that say where a multi-host run is (vggish_jax.distributed)."""
    p.add_argument("--distributed", action="store_true",
                   help="join a multi-host run (one process per host): coordinator, num_processes and process_id "
                        "from the --config file, else $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, "
                        "$JAX_PROCESS_ID, else found by JAX on a cluster (SLURM, Cloud TPU); setting them alone "
                        "also joins")
    declare(p, coordinator=Setting(None, "multi-host: HOST:PORT of process 0's coordinator service "
                                         "(default: $JAX_COORDINATOR_ADDRESS)"),
            num_processes=Setting(None, "multi-host: number of processes in the run (default: $JAX_NUM_PROCESSES)",
                                  type=positive_int),
            process_id=Setting(None, "multi-host: this process, 0 .. num_processes - 1 (default: $JAX_PROCESS_ID)",
                               type=nonnegative_int))


# -- the settings file -------------------------------------------------------------------------------------------

def config(p, **settings: Setting) -> None:
    """--config FILE, with the settings only that file sets (listed at the end of the command's --help)."""
    declare(p, **settings)
    p.add_argument("--config", metavar="FILE",
                   help="a TOML settings file: any option of this command by its long name with underscores "
                        "(batch_size = 32), and the settings listed below; flags given here win (default: none)")
    found = getattr(p, "config_only", {})
    lines = [textwrap.fill(f"{key}: {s.help}", 100, initial_indent="  ", subsequent_indent="      ")
             for key, s in sorted(found.items())]
    p.epilog = "settings only a --config file sets:\n" + "\n".join(lines)
    p.formatter_class = argparse.RawDescriptionHelpFormatter


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
