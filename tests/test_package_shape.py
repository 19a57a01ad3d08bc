"""Issue 26's limits on the installed package, so they cannot drift back: no benchmarks inside it, no function
over 80 lines, and at most 9,500 source lines (non-blank, non-comment lines; docstrings count as code)."""
import ast
import pathlib
import tokenize

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "vggish_jax"
FILES = sorted(PACKAGE.rglob("*.py"))


def source_lines(path: pathlib.Path) -> int:
    """Lines holding a token other than a comment or line break: a docstring's lines count, blank lines do not."""
    lines = set()
    with tokenize.open(path) as f:
        for tok in tokenize.generate_tokens(f.readline):
            if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                tokenize.DEDENT, tokenize.ENDMARKER):
                lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def test_source_line_count_matches_a_hand_counted_file(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('"""Doc\n\nmore doc."""\n# a comment\n\nx = (1,\n     2)  # trailing\n\n\ndef f():\n    return x\n')
    assert source_lines(src) == 7  # 3 docstring lines, 2 for x, 2 for f


def test_the_package_stays_under_9500_source_lines():
    total = sum(source_lines(p) for p in FILES)
    assert total <= 9500, f"vggish_jax/ has {total} source lines; the limit is 9,500"


def test_no_benchmarks_inside_the_package():
    assert not [p for p in FILES if p.name.startswith("bench")]


def test_no_function_over_80_lines():
    long = [f"{p.relative_to(PACKAGE)}:{node.name} {node.end_lineno - node.lineno + 1}"
            for p in FILES for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80]
    assert not long, long
