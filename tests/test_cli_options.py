"""The command line's one vocabulary, checked on the real parsers: help for every option, its real default stated
as "(default: X)", one default and one type per flag name across commands, at most 60 options in all, and
`--config settings.toml` (file values used, flags win, unknown keys and bad values refused in one line)."""
from __future__ import annotations

import argparse
import re

import pytest

from vggish_jax import cli
from vggish_jax.commands import options

COMMANDS = list(cli.COMMANDS)


def parser_of(command: str) -> argparse.ArgumentParser:
    return cli.build_parser([command]).chosen


def options_of(command: str) -> list[argparse.Action]:
    return [a for a in parser_of(command)._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def stated_default(help_text: str) -> str:
    found = re.findall(r"\(default: ([^()]*(?:\([^()]*\)[^()]*)*)\)", help_text)
    assert found, f"no '(default: ...)' in {help_text!r}"
    return found[-1]


def expected(default) -> str | None:
    """The text a help must state for `default`; None where the default is absent and the help says what then."""
    if default is None or default == []:
        return None
    return str(default).lower() if isinstance(default, bool) else str(default)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_stating_its_real_default(command):
    p = parser_of(command)
    formatter = p._get_formatter()
    for action in options_of(command):
        name = action.option_strings[0]
        assert action.help and action.help.strip(), f"{command} {name}: no help"
        if action.nargs == 0:  # a flag: on when given
            continue
        if action.required:
            assert action.help.endswith("(required)"), f"{command} {name}: required, and its help does not say so"
            continue
        said = stated_default(formatter._expand_help(action))
        want = expected(action.default)
        if want is None:
            assert said and not re.fullmatch(r"-?\d+(\.\d+)?", said), f"{command} {name}: states {said!r}"
        else:
            assert said == want, f"{command} {name}: help says {said!r}, the parser's default is {want!r}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_config_only_setting_states_its_real_default(command):
    p = parser_of(command)
    flags = {options.key_of(a) for a in p._actions}
    for key, s in getattr(p, "config_only", {}).items():
        said, want = stated_default(s.help), expected(s.default)
        assert said == want if want is not None else said, f"{command} {key}: {said!r} vs {want!r}"
        assert key not in flags and key.isidentifier(), key  # one name, one way to set it


def test_each_flag_has_one_default_and_one_type_everywhere():
    seen = {}
    for command in COMMANDS:
        for action in options_of(command):
            for name in action.option_strings:
                # --format is the form of what each command writes: its choices are the command's own, and its
                # default is always the first of them (options.output_format), the command's native form.
                native = name == "--format" and action.default == action.choices[0]
                default = "first choice" if native else action.default
                kind = (type(action).__name__, action.type, default, action.nargs)
                first = seen.setdefault(name, (command, kind))
                assert first[1] == kind, f"{name}: {first[0]} has {first[1]}, {command} has {kind}"
    # The renamed clashes stay renamed: --top is predict's only, --download takes a value everywhere.
    assert [c for c in COMMANDS if any("--top" in a.option_strings for a in options_of(c))] == ["predict"]
    assert seen["--download"][1][3] is None and seen["--batch-size"][1][2] == 64


def test_at_most_60_options_in_all_each_with_one_flag_string():
    counts = {c: len(options_of(c)) for c in COMMANDS}
    assert sum(counts.values()) <= 60, f"{sum(counts.values())} options: {counts}"
    for command in COMMANDS:
        for action in options_of(command):
            assert len(action.option_strings) == 1, f"{command}: {action.option_strings}"


def test_final_relu_takes_yes_or_no_on_the_line_and_in_a_file(tmp_path, capsys):
    base = ["embed", "a.wav", "--weights", "w", "--out", "o"]
    assert cli.parse_args(base + ["--final-relu", "yes"]).final_relu is True
    assert cli.parse_args(base + ["--final-relu", "no"]).final_relu is False
    with pytest.raises(SystemExit):
        cli.parse_args(base + ["--final-relu", "maybe"])
    assert "argument --final-relu: 'maybe': choose yes or no" in capsys.readouterr().err
    for text, want in (('final_relu = "yes"\n', True), ("final_relu = false\n", False)):
        assert cli.parse_args(base + ["--config", _settings(tmp_path, text)]).final_relu is want


def test_range_errors_are_worded_one_way(capsys):
    for argv in (["embed", "a.wav", "--weights", "w", "--out", "o", "--batch-size", "0"],
                 ["fad", "r", "g", "--show-farthest", "-1"], ["predict", "--example", "--top", "0"]):
        with pytest.raises(SystemExit):
            cli.parse_args(argv)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert re.search(r"argument --[a-z-]+: must be \d or more, got -?\d+$", err), err


def _settings(tmp_path, text: str) -> str:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return str(path)


def test_config_values_are_used_and_flags_win(tmp_path):
    cfg = _settings(tmp_path, 'batch_size = 8\nfinal_relu = false\ndtype = "bfloat16"\nflush_every = 3\n'
                              'resample = "host"\n')
    base = ["embed", "a.wav", "--weights", "w", "--out", "o", "--config", cfg]
    args = cli.parse_args(base)
    assert (args.batch_size, args.final_relu, args.dtype, args.flush_every, args.resample) == (
        8, False, "bfloat16", 3, "host")
    args = cli.parse_args(base + ["--batch-size", "4", "--final-relu", "yes"])
    assert (args.batch_size, args.final_relu, args.dtype, args.flush_every) == (4, True, "bfloat16", 3)
    # A required option given by the file is required no more; without it, it still is.
    cfg_weights = _settings(tmp_path, 'weights = "/models/vggish"\n')
    assert cli.parse_args(["embed", "a.wav", "--out", "o", "--config", cfg_weights]).weights == "/models/vggish"
    with pytest.raises(SystemExit):
        cli.parse_args(["embed", "a.wav", "--out", "o"])
    plain = cli.parse_args(base[:-2])
    assert (plain.batch_size, plain.final_relu, plain.flush_every, plain.resample) == (64, None, 16, "auto")
    # Lists and the multi-host settings (extract): typed like their flags.
    cfg = _settings(tmp_path, 'classes = ["Jazz", "Pop music"]\nprocess_id = 1\nshard_size = 5\n')
    args = cli.parse_args(["extract", "--out", "o", "--config", cfg])
    assert (args.classes, args.process_id, args.shard_size) == (["Jazz", "Pop music"], 1, 5)
    # The settings that lost their flags: compare's, fad's and finetune's, by their keys.
    cfg = _settings(tmp_path, 'jobs = 2\nseed = 7\nallow_incomplete = true\ndata_dir = "/d"\nmanual_dir = "/m"\n')
    args = cli.parse_args(["compare", "--embeddings", "e", "--out", "o", "--config", cfg])
    assert (args.jobs, args.seed, args.allow_incomplete, args.data_dir, args.manual_dir) == (2, 7, True, "/d", "/m")
    plain = cli.parse_args(["compare", "--embeddings", "e", "--out", "o"])
    assert (plain.jobs, plain.seed, plain.allow_incomplete, plain.data_dir) == (-1, 0, False, None)
    cfg = _settings(tmp_path, 'pad = true\nbatch_size = 8\nfinal_relu = "yes"\nsave_gen_stats = "g.npz"\n')
    args = cli.parse_args(["fad", "r", "g", "--config", cfg])
    assert (args.pad, args.batch_size, args.final_relu, args.save_gen_stats) == (True, 8, True, "g.npz")
    plain = cli.parse_args(["fad", "r", "g"])
    assert (plain.pad, plain.batch_size, plain.final_relu, plain.save_gen_stats) == (False, 64, None, None)
    cfg = _settings(tmp_path, "workers = 0\n")
    assert cli.parse_args(["finetune", "--data-dir", "d", "--workdir", "w", "--config", cfg]).workers == 0


@pytest.mark.parametrize("text, message", [
    ("batch_sise = 8\n", r"settings.toml: unknown key 'batch_sise' for vggish-jax embed; the keys it takes: .*"
                         r"batch_size"),
    ("batch_size = 0\n", r"settings.toml: batch_size = 0: must be 1 or more, got 0"),
    ('batch_size = "many"\n', r"settings.toml: batch_size = 'many': 'many' is not a whole number"),
    ('dtype = "float16"\n', r"settings.toml: dtype = 'float16': takes one of float32, bfloat16"),
    ('pad = "yes"\n', r"settings.toml: pad = 'yes': takes true or false"),
    ("config = 'other.toml'\n", r"unknown key 'config'"),
    ("batch_size = \n", r"settings.toml: not a TOML file"),
])
def test_bad_settings_are_refused_in_one_line(tmp_path, capsys, text, message):
    cfg = _settings(tmp_path, text)
    assert cli.main(["embed", "a.wav", "--weights", "w", "--out", str(tmp_path / "o"), "--config", cfg]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("vggish-jax embed: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_a_missing_settings_file_is_named(tmp_path, capsys):
    assert cli.main(["fad", "r", "g", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such settings file; check --config" in capsys.readouterr().err
