"""`vggish-jax` command line: a thin layer of subcommands over the library API.

vggish_jax/commands/<name>.py defines add_arguments(parser), run(args) -> exit code and optionally ON_STOP (what a
stop or full disk leaves). Modules are imported only when their command runs, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys

from vggish_jax import compilation_cache
from vggish_jax.commands import options
from vggish_jax.skips import one_line

# What a stopped run leaves, for commands that do not say (ON_STOP in their module).
DEFAULT_ON_STOP = "nothing was saved; rerun the same command"

# Each command's module is vggish_jax.commands.<name>.
COMMANDS = {
    "embed": "embed audio files with VGGish into OUT/embeddings.npz (resumable)",
    "extract": "embed a dataset (FMA, a labelled folder or CSV, GTZAN; AudioSet's released embeddings) into a "
               "resumable store",
    "convert": "convert published VGGish weights (torchvggish .pth, TF checkpoint) into a weights directory",
    "compare": "fit the paper's 13 classifiers (+ better heads) on extracted embeddings; write the table",
    "predict": "predict the genre of audio files (offline MusiCNN, or VGGish + a trained head)",
    "finetune": "fine-tune VGGish + a genre head on FMA, data-parallel over all devices, resumable",
    "fad": "Fréchet Audio Distance of GEN against REF (audio, stored embeddings or statistics), FAD-inf, per-file",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that `finally` blocks save finished work."""


def _raise_terminated(signum, frame):
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    """argparse, plus the one thing it cannot say: a file name starting with '-' was taken for an option."""

    def error(self, message):
        from vggish_jax.audio import AUDIO_EXTENSIONS

        argv = getattr(self, "argv", [])
        dashed = [a for a in argv if a.startswith("-") and a not in ("-", "--")
                  and (os.path.exists(a) or a.lower().endswith(AUDIO_EXTENSIONS))]
        if dashed:
            command = next((a for a in argv if a in COMMANDS), "COMMAND")
            message += (f"; {dashed[0]!r} was read as an option: put -- before file names that start with '-' "
                        f"(vggish-jax {command} [options] -- {dashed[0]}) or write it as ./{dashed[0]}")
        super().error(one_line(message))


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="vggish-jax", description=__doc__.splitlines()[0])
    parser.argv = list(argv)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, help in COMMANDS.items():
        p = sub.add_parser(name, help=help)
        p.argv = list(argv)
        if name == chosen:
            importlib.import_module(f"vggish_jax.commands.{name}").add_arguments(p)
            parser.chosen = p
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line, over the --config file's values where it gives one (a one-line ValueError or
    FileNotFoundError for a file it cannot use). A required option the file gives is required no more."""
    parser = build_parser(argv)
    sub = getattr(parser, "chosen", None)
    if sub is None or {"-h", "--help"} & set(argv):  # argparse says what is missing, or prints the help
        return parser.parse_args(argv)
    required = [a for a in sub._actions if a.required and a.option_strings]
    for action in required:  # the first pass only finds the file
        action.required = False
    first = parser.parse_args(argv)
    values = options.read(first.config, sub, first.command) if getattr(first, "config", None) else {}
    default_batch_size = sub.get_default("batch_size")  # the built-in one, for messages
    sub.set_defaults(**values)  # the file's values become the defaults, so flags given win over them
    for action in required:
        action.required = action.dest not in values
    args = parser.parse_args(argv) if values or required else first
    args.default_batch_size = default_batch_size
    args.batch_size_flag = any("--batch-size" in a.option_strings for a in sub._actions)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
    except (ValueError, OSError) as e:
        print(f"vggish-jax {next((a for a in argv if a in COMMANDS), '')}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    compilation_cache.enable()
    compilation_cache.apply_xla_flags()
    module = importlib.import_module(f"vggish_jax.commands.{args.command}")
    on_stop = getattr(module, "ON_STOP", DEFAULT_ON_STOP)
    try:
        old_handler = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        old_handler = None
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt as e:
        how = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"vggish-jax {args.command}: {how}; {on_stop}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except (ValueError, OSError, RuntimeError, MemoryError) as e:
        # Library errors carry a one-line message naming the file and the fix; OSError (FileNotFoundError,
        # PermissionError) names the file itself.
        print(f"vggish-jax {args.command}: error: {_message(e, args, on_stop)}", file=sys.stderr)
        return 2
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)


def _message(e: BaseException, args, on_stop: str) -> str:
    full = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or "No space left on device" in str(e):
        where = f"{e.filename}: " if full and e.filename else ""
        return one_line(f"{where}no space left on the device; free some space (df -h shows how much there is) "
                        f"or write elsewhere; {on_stop}")
    text = _one_line(e)
    if isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in text and ("Out of memory" in text or "alloc" in text):
        size = getattr(args, "batch_size", None)
        what = f" ({text[:200]})" if text != "MemoryError" else ""
        how = "--batch-size" if getattr(args, "batch_size_flag", True) else "batch_size in a --config file"
        lower = (f"lower {how} (it is {size}; the default is {args.default_batch_size})" if size
                 else "use smaller inputs")
        return f"out of memory{what}; {lower}"
    return text


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
