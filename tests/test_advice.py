"""Every `vggish-jax ...` command that the source suggests (error messages, help texts) must parse."""
import argparse
import ast
import pathlib
import re
import shlex

import pytest

from vggish_jax import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("vggish_jax", "experiments") for p in sorted((ROOT / d).rglob("*.py"))]


def _strings(tree):
    """Every string literal but docstrings (which may name an option without its value), f-strings rendered
    with X for their fields (adjacent literals already joined)."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "X" for v in node.values]
            yield node.lineno, "".join(parts)


def suggested_commands():
    found = []
    for path in SOURCES:
        for line, text in _strings(ast.parse(path.read_text(), str(path))):
            for cmd in re.findall(r"`(vggish-jax [^`]+)`", text):
                found.append(pytest.param(cmd, id=f"{path.relative_to(ROOT)}:{line}:{cmd[:40]}"))
    return found


COMMANDS = suggested_commands()


def test_the_collector_finds_the_error_message_advice():
    texts = [p.values[0] for p in COMMANDS]
    assert any(t.startswith("vggish-jax convert --download") for t in texts)
    assert any(t.startswith("vggish-jax compare") for t in texts)
    assert len(texts) >= 10


@pytest.mark.parametrize("command", COMMANDS)
def test_suggested_command_parses(command):
    # "..." stands for the user's own arguments, so required options may be missing; every option and value
    # that is written out must exist and be accepted by the real parser.
    argv = [t for t in shlex.split(command)[1:] if t != "..."]
    parser = cli.build_parser(argv)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[argv[0]]
    for action in sub._actions:
        action.required = False
    try:
        parser.parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"`{command}` does not parse (exit {e.code})")
