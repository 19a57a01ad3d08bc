"""`vggish-jax` command line: a thin layer of subcommands over the library API.

Each subcommand lives in vggish_jax/commands/<name>.py and defines HELP, add_arguments(parser) and
run(args) -> exit code. Modules are imported only when their command runs, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "embed": "vggish_jax.commands.embed",
    "extract": "vggish_jax.commands.extract",
    "convert": "vggish_jax.commands.convert",
    "compare": "vggish_jax.commands.compare",
    "bench": "vggish_jax.commands.bench",
    "predict": "vggish_jax.commands.predict",
    "finetune": "vggish_jax.commands.finetune",
    "fad": "vggish_jax.commands.fad",
}

HELP = {
    "embed": "embed audio files with VGGish into an .npz",
    "extract": "embed every clip of FMA (built as a TFDS dataset) into resumable per-split shards",
    "convert": "convert published VGGish weights (torchvggish .pth, TF checkpoint) into a weights directory",
    "compare": "fit the paper's 13 classifiers (+ better heads) on extracted embeddings; write the table",
    "bench": "measure frontend, decode, embedding, end-to-end and training throughput; write results/",
    "predict": "predict the genre of audio files (offline MusiCNN, or VGGish + a trained head)",
    "finetune": "fine-tune VGGish + a genre head on FMA, data-parallel over all devices, resumable",
    "fad": "Fréchet Audio Distance of GEN against REF (audio, stored embeddings or statistics), FAD-inf, per-file",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vggish-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=HELP.get(name, ""))
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        # Library errors carry a one-line message naming the file and the fix.
        print(f"vggish-jax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
