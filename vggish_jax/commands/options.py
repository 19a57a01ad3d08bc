"""The command line's one vocabulary: every option shared by several commands, defined once here.

Each flag has one meaning, default and range rule everywhere, its help ending "(default: X)" (checked by
tests/test_cli_options.py). Settings no one changes per run have no flag, only a `--config` key (settings_file).
"""
from __future__ import annotations

import argparse
import os
import textwrap

from vggish_jax.pipeline.placement import RESAMPLE_CHOICES
from vggish_jax.settings_file import Setting, declare, yes_no

BATCH_SIZE = 64  # examples per device call
# Decode workers: one fewer than the CPUs, leaving one for the process that feeds the device
# (the same rule as vggish_jax.datasets.decode.default_workers, not imported to keep --help fast).
WORKERS = max(1, (os.cpu_count() or 2) - 1)
DTYPES = ("float32", "bfloat16")


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
                           "(default: float32)", choices=DTYPES)


# -- device and decoding -----------------------------------------------------------------------------------------

BATCH_SIZE_HELP = ("examples (0.96-s frames) per device call; lower it if the device runs out of memory "
                   f"(default: {BATCH_SIZE})")
WORKERS_HELP = ("audio decode worker processes running beside the device, 0: decode in this process, in turn with "
                f"it; the default is one fewer than this machine's CPUs (default: {WORKERS})")


def batch_size(p) -> None:
    p.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE, metavar="N", help=BATCH_SIZE_HELP)


def workers(p) -> None:
    p.add_argument("--workers", type=nonnegative_int, default=WORKERS, metavar="N", help=WORKERS_HELP)


# The same settings, for a command that takes them from its --config file only.
BATCH_SIZE_SETTING = Setting(BATCH_SIZE, BATCH_SIZE_HELP, type=positive_int)
WORKERS_SETTING = Setting(WORKERS, WORKERS_HELP, type=nonnegative_int)


# -- output ------------------------------------------------------------------------------------------------------

def out(p, *, help: str, required: bool = True) -> None:
    p.add_argument("--out", required=required, metavar="DIR",
                   help=f"output folder, created if missing: {help}"
                        + (" (required)" if required else " (default: none)"))


def output_format(p, *, choices: tuple[str, ...], help: str) -> None:
    """--format WHAT: the form of what this command writes; the first choice, its native form, is the default."""
    p.add_argument("--format", choices=choices, default=choices[0], metavar="|".join(choices),
                   help=f"{help} (default: {choices[0]})")


def postprocess(p) -> None:
    p.add_argument("--postprocess", action="store_true",
                   help="apply the PCA + uint8 quantisation of the released embeddings (needs weights with PCA "
                        "params)")


PAD_HELP = "zero-pad files shorter than one 0.975-s example instead of skipping them"


def pad(p) -> None:
    p.add_argument("--pad", action="store_true", help=PAD_HELP)


PAD_SETTING = Setting(False, PAD_HELP + " (default: false)")


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
