"""The Hugging Face Hub layout beyond save_pretrained: `convert --format safetensors` and
`VGGish.from_pretrained("org/name")` through huggingface_hub.snapshot_download (monkeypatched: no network)."""
import json
import os
import sys
import types

import numpy as np
import pytest

from vggish_jax import cli
from vggish_jax.models.vggish import params as params_lib
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.modeling import VGGish

st = pytest.importorskip("safetensors.numpy", reason="the [hub] extra: pip install -e '.[hub]'")


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory):
    """`convert --random 3` written once as orbax and once as safetensors."""
    d = tmp_path_factory.mktemp("formats")
    assert cli.main(["convert", "--random", "3", "--out", str(d / "orbax")]) == 0
    assert cli.main(["convert", "--random", "3", "--out", str(d / "st"), "--format", "safetensors"]) == 0
    return str(d / "orbax"), str(d / "st")


def test_convert_format_safetensors_gives_the_orbax_embeddings(both_formats):
    orbax_dir, st_dir = both_formats
    assert sorted(os.listdir(st_dir)) == ["README.md", "config.json", "model.safetensors"]
    a, b = VGGish.from_pretrained(orbax_dir), VGGish.from_pretrained(st_dir)
    x = np.random.default_rng(0).standard_normal((3, 96, 64)).astype(np.float32)
    assert float(np.abs(np.asarray(a(x)) - np.asarray(b(x))).max()) == 0.0
    assert a.spec == b.spec and a.final_relu == b.final_relu
    config = json.load(open(os.path.join(st_dir, "config.json")))
    assert config["source"] == "random" and config["seed"] == 3
    assert config["spec"]["weights_sha256"] == config["weights_sha256"] == a.spec.weights_sha256


def test_safetensors_file_opens_without_code(both_formats):
    """safetensors' own NumPy reader (a JSON header + raw bytes: nothing in it can run) holds the orbax tensors."""
    orbax_dir, st_dir = both_formats
    tensors = st.load_file(os.path.join(st_dir, "model.safetensors"))
    want = params_lib.load(orbax_dir)[0]
    assert set(tensors) == {f"{layer}.{k}" for layer in want for k in want[layer]}
    for layer in want:
        for k in want[layer]:
            np.testing.assert_array_equal(tensors[f"{layer}.{k}"], want[layer][k])
    with open(os.path.join(st_dir, "model.safetensors"), "rb") as f:
        raw = f.read()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])  # the format's documented layout
    assert header["__metadata__"] == {"format": "vggish-jax-safetensors-1"}
    assert b"\x80\x04" not in raw[:16] and b"PK" != raw[:2]  # neither a pickle nor a zip (torch.save)


def test_convert_format_safetensors_then_embed_and_verify(both_formats, tmp_path, capsys):
    """The CLI reads the folder wherever it takes --weights; --verify runs on it (random weights: FAIL, exit 1)."""
    _, st_dir = both_formats
    wav = tmp_path / "a.wav"
    import soundfile as sf
    from conftest import tone_mix

    sf.write(wav, tone_mix(2.0, 16000), 16000)
    assert cli.main(["embed", str(wav), "--weights", st_dir, "--out", str(tmp_path / "e"), "--workers", "0"]) == 0
    with np.load(tmp_path / "e" / "embeddings.npz") as z:
        assert z[z.files[0]].shape == (2, 128)
    capsys.readouterr()
    assert cli.main(["convert", "--out", st_dir, "--verify"]) == 1
    assert "verify: FAIL" in capsys.readouterr().out


def test_convert_format_default_and_choices():
    from vggish_jax.commands import convert
    import argparse

    p = argparse.ArgumentParser()
    convert.add_arguments(p)
    assert p.parse_args(["--out", "x"]).format == "orbax"
    with pytest.raises(SystemExit):
        p.parse_args(["--out", "x", "--format", "pickle"])


def _fake_hub(monkeypatch, snapshot_download):
    fake = types.ModuleType("huggingface_hub")
    fake.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)


def test_from_pretrained_repo_id_goes_through_snapshot_download(both_formats, tmp_path, monkeypatch):
    orbax_dir, _ = both_formats
    local = VGGish.from_pretrained(orbax_dir).save_pretrained(tmp_path / "snapshot")
    calls = []

    def snapshot_download(repo_id, **kw):
        calls.append((repo_id, kw))
        return local

    _fake_hub(monkeypatch, snapshot_download)
    monkeypatch.chdir(tmp_path)  # no folder "someorg/vggish" here
    model = VGGish.from_pretrained("someorg/vggish")
    assert calls == [("someorg/vggish", {"allow_patterns": ["model.safetensors", "config.json", "README.md"]})]
    want = VGGish.from_pretrained(orbax_dir)
    x = np.random.default_rng(1).standard_normal((2, 96, 64)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(want(x)))


def test_existing_folder_and_non_repo_ids_never_reach_the_hub(both_formats, tmp_path, monkeypatch):
    def snapshot_download(repo_id, **kw):
        raise AssertionError(f"network attempt for {repo_id}")

    _fake_hub(monkeypatch, snapshot_download)
    _, st_dir = both_formats
    monkeypatch.chdir(os.path.dirname(st_dir))
    assert VGGish.from_pretrained(os.path.basename(st_dir)).spec is not None  # a relative folder: no Hub
    missing = str(tmp_path / "no" / "such" / "weights")
    with pytest.raises(WeightsError) as e:
        VGGish.from_pretrained(missing)
    assert str(e.value).startswith(f"{missing}: ") and "\n" not in str(e.value)
    assert "vggish-jax convert" in str(e.value)
    with pytest.raises(WeightsError, match=rf"^{os.path.abspath('../up/x')}: "):  # a path, not a repo id
        VGGish.from_pretrained("../up/x")


def test_hub_failure_is_one_line_naming_the_repo(tmp_path, monkeypatch):
    def snapshot_download(repo_id, **kw):
        raise OSError("We couldn't connect to 'https://huggingface.co'\nto load the files")

    _fake_hub(monkeypatch, snapshot_download)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError, match=r"^someorg/missing: no such folder here, and not loadable from the "
                                           r"Hugging Face Hub \(OSError: We couldn't connect") as e:
        VGGish.from_pretrained("someorg/missing")
    assert "\n" not in str(e.value)


def test_hub_without_huggingface_hub_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError, match=r"^someorg/vggish: .*pip install 'vggish-jax\[hub\]'"):
        VGGish.from_pretrained("someorg/vggish")


def test_model_card_metadata_reads_with_huggingface_hub(both_formats):
    """The card's YAML front matter as the Hub parses it (huggingface_hub's own reader, when installed)."""
    hf = pytest.importorskip("huggingface_hub", reason="the [hub] extra: pip install -e '.[hub]'")
    _, st_dir = both_formats
    card = hf.ModelCard.load(os.path.join(st_dir, "README.md"))
    assert card.data.library_name == "vggish-jax" and card.data.license == "apache-2.0"
    assert "vggish" in card.data.tags
