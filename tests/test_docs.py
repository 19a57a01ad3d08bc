"""The documentation says only what the code accepts: README.md and docs/*.md checked against the CLI parsers.

Oracles: the real argparse parsers (built in-process from vggish_jax.cli, and from benchmarks/ when it exists),
Python's own compiler for the ```python blocks, the import system for every `vggish_jax.x.y` name the pages
mention (and every `from vggish_jax... import name` in their python blocks), and the file system for links. A
bad flag or a removed name fed to the same checker must fail (test_checker_rejects_*), so the checks can fail.
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib
import re
import shlex
from pathlib import Path

from vggish_jax import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_PAGES = ("weights", "frontend", "extraction", "classification", "audioset", "fad", "benchmarks",
             "finetuning", "troubleshooting", "integrations", "layout")
README_MAX_BYTES = 12_000

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
SHELL = {"bash", "sh", "console", "shell"}
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}


def markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def _strip_fences(text: str) -> str:
    return FENCE.sub("", text)


def shell_commands(text: str) -> list[str]:
    """Every command line in the shell blocks (continuations joined, `$ ` prompts dropped) and every inline
    code span that starts with `vggish-jax `."""
    lines = []
    for lang, body in FENCE.findall(text):
        if lang in SHELL:
            body = re.sub(r"\\\n\s*", " ", body)
            lines += [line.strip().removeprefix("$ ") for line in body.splitlines()]
    lines += [span for span in INLINE.findall(_strip_fences(text)) if span.startswith("vggish-jax ")]
    return [line for line in lines if line and not line.startswith("#")]


def invocations(line: str, program: tuple[str, ...]) -> list[list[str]]:
    """The argument lists after `program` (e.g. ("vggish-jax",)) in one shell line, split at && ; | etc."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        tokens = list(lexer)
    except ValueError as e:  # an unbalanced quote: say where
        raise AssertionError(f"{line!r}: {e}") from None
    found, current = [], []
    for tok in [*tokens, ";"]:
        if tok in SEPARATORS:
            if tuple(current[:len(program)]) == program:
                found.append(current[len(program):])
            current = []
        else:
            current.append(tok)
    return found


@functools.cache
def vggish_jax_parser(command: str) -> argparse.ArgumentParser | None:
    if command not in cli.COMMANDS:
        return None
    parser = cli.build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@functools.cache
@functools.lru_cache(maxsize=1)
def benchmarks_parser() -> argparse.ArgumentParser:
    """benchmarks/__main__.py's own parser (benchmarks/ is repository code, run from the root)."""
    return importlib.import_module("benchmarks.__main__").build_parser()


def flag_errors(parser: argparse.ArgumentParser, args: list[str], where: str) -> list[str]:
    """Each `--flag` in args that parser does not accept (exact spelling; abbreviations do not count)."""
    actions = parser._option_string_actions
    errors, takes_value = [], False
    for tok in args:
        tok = tok.strip("[]")
        if takes_value is True or (takes_value == "many" and not tok.startswith("--")):
            takes_value = "many" if takes_value == "many" else False  # an option's value, even "--runner=X"
            continue
        if not tok.startswith("--") or tok == "--" or tok.startswith("---"):
            takes_value = False
            continue
        flag = tok.split("=", 1)[0]
        action = actions.get(flag)
        if action is None:
            errors.append(f"{where}: {flag} is not an option of `{parser.prog}`")
            takes_value = False
        else:
            takes_value = False if "=" in tok or action.nargs == 0 else (
                "many" if action.nargs in ("*", "+") else True)
    return errors


def check_line(line: str, where: str) -> list[str]:
    errors = []
    for args in invocations(line, ("vggish-jax",)):
        command = next((a for a in args if not a.startswith("-")), None)
        parser = vggish_jax_parser(command) if command else None
        if parser is None:
            if args not in ([], ["--help"], ["-h"]):
                errors.append(f"{where}: `vggish-jax {command}` is not a subcommand ({', '.join(cli.COMMANDS)})")
            continue
        errors += flag_errors(parser, args[args.index(command) + 1:], where)
    for args in invocations(line, ("python", "-m", "benchmarks")):
        errors += flag_errors(benchmarks_parser(), args, where)
    return errors


def test_every_documented_command_line_parses():
    errors, seen = [], 0
    for path in markdown_files():
        for line in shell_commands(path.read_text(encoding="utf-8")):
            seen += "vggish-jax" in line or "benchmarks" in line
            errors += check_line(line, f"{path.relative_to(ROOT)}: {line[:60]!r}")
    assert seen >= 20, f"found only {seen} command lines: is the extraction broken?"
    assert not errors, "\n".join(errors)


def test_checker_rejects_a_wrong_flag_and_an_unknown_subcommand():
    good = "vggish-jax embed a.wav --weights w --out o --batch-size 64 --postprocess"
    assert check_line(good, "good") == []
    bad = check_line("pip install -e . && vggish-jax embed a.wav --weights w --out o --batch-sise 64", "bad")
    assert len(bad) == 1 and "--batch-sise" in bad[0]
    assert check_line("vggish-jax embedd a.wav", "bad")
    # a value that looks like a flag is the option's value, not a flag; a flag after it still counts
    assert check_line('vggish-jax extract --out o --beam-options "--runner=X" --no-such', "v") == [
        "v: --no-such is not an option of `vggish-jax extract`"]
    text = "```bash\nvggish-jax predict \\\n    --example --topp 3   # comment --ignored\n```\nand `vggish-jax fad a b --plott x`\n"
    flags = sorted(e.split(": ")[1].split()[0] for line in shell_commands(text) for e in check_line(line, "t"))
    assert flags == ["--plott", "--topp"]


def test_checker_rejects_a_wrong_benchmarks_flag():
    assert check_line("python -m benchmarks --no-such-flag", "b")


def test_python_blocks_compile():
    for path in markdown_files():
        for i, (lang, body) in enumerate(FENCE.findall(path.read_text(encoding="utf-8"))):
            if lang == "python":
                compile(body, f"{path.name}[python block {i}]", "exec")  # a SyntaxError names the block


DOTTED = re.compile(r"\bvggish_jax(?:\.\w+)+")


def documented_names(text: str) -> set[str]:
    """Every dotted `vggish_jax.x.y` in the text, and `module.name` for each `from vggish_jax... import name`
    in its python blocks."""
    names = set(DOTTED.findall(text))
    for lang, body in FENCE.findall(text):
        if lang == "python":
            for node in ast.walk(ast.parse(body)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vggish_jax":
                    names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def name_error(name: str) -> str | None:
    """None if `name` imports (its longest importable module prefix, then attributes), else why not."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return f"{name}: {'.'.join(parts[:i])} has no {attr!r}"
            obj = getattr(obj, attr)
        return None
    return f"{name}: cannot import {parts[0]}"


def test_every_documented_python_name_exists():
    errors = []
    for path in markdown_files():
        for name in sorted(documented_names(path.read_text(encoding="utf-8"))):
            if (why := name_error(name)) is not None:
                errors.append(f"{path.relative_to(ROOT)}: {why}")
    assert not errors, "\n".join(errors)


def test_checker_rejects_a_removed_name():
    text = "`vggish_jax.load_pretrained(w)`\n```python\nfrom vggish_jax import weights_convert, embed\n```\n"
    names = documented_names(text)
    assert names == {"vggish_jax.load_pretrained", "vggish_jax.weights_convert", "vggish_jax.embed"}
    names.remove("vggish_jax.embed")
    assert all(name_error(n) for n in names)
    assert name_error("vggish_jax.pipeline.extract.open_source") is None


def test_readme_is_the_front_door():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"
    links = set(LINK.findall(README.read_text(encoding="utf-8")))
    for page in DOC_PAGES:
        assert (ROOT / "docs" / f"{page}.md").is_file(), f"docs/{page}.md is missing"
        assert f"docs/{page}.md" in links, f"README.md does not link docs/{page}.md"


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def heading_anchors(path: Path) -> set[str]:
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", _strip_fences(path.read_text(encoding="utf-8")), re.M)}


def test_relative_links_point_to_existing_files_and_headings():
    broken = []
    for path in markdown_files():
        for target in LINK.findall(_strip_fences(path.read_text(encoding="utf-8"))):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = path.parent / file if file else path
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest)):
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "\n".join(broken)


def test_anchor_rule_follows_github():  # anchors GitHub gives these headings
    assert anchor("Against torchvggish 0.2's own pipeline") == "against-torchvggish-02s-own-pipeline"
    assert anchor("Device check (GPU/TPU): one command") == "device-check-gputpu-one-command"
    assert anchor("Fréchet Audio Distance") == "fréchet-audio-distance"
