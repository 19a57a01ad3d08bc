"""EmbeddingSpec: content identity of weights, round trip, and refusal messages that name both sides."""
import numpy as np
import pytest

from vggish_jax.models.vggish import modeling, params
from vggish_jax.spec import EmbeddingSpec, SpecMismatch, params_sha256, require_compatible


def test_weights_identity_is_content_not_path(tmp_path):
    p0, p1 = modeling.random(0, width_divisor=8), modeling.random(1, width_divisor=8)  # small: same code path
    params.save(tmp_path / "a", p0)
    params.save(tmp_path / "b", p0)
    params.save(tmp_path / "c", p1)
    sha = {k: params.load(tmp_path / k)[2]["weights_sha256"] for k in "abc"}
    assert sha["a"] == sha["b"] != sha["c"]
    # One changed bit of one tensor changes the hash.
    p2 = {k: {kk: vv.copy() for kk, vv in v.items()} for k, v in p0.items()}
    p2["fc2"]["bias"].view(np.uint32)[0] ^= 1
    assert params_sha256(p2) != sha["a"]
    # The same weights converted over a folder that held others: the recorded identity follows the content.
    params.save(tmp_path / "c", p0)
    assert params.load(tmp_path / "c")[2]["weights_sha256"] == sha["a"]


def test_round_trip_and_mismatch_message():
    s = EmbeddingSpec.create(weights_sha256="a" * 64, final_relu=True, postprocess=True,
                             frontend={"sample_rate": 16000})
    assert EmbeddingSpec.from_dict(s.to_dict()) == s
    assert s.postprocess == "pca_uint8_truncate"
    other = s.replace(final_relu=False, postprocess=False)
    with pytest.raises(SpecMismatch) as e:
        require_compatible(s, other, expected_from="head.json", found_from="emb/info.json")
    msg = str(e.value)
    assert "\n" not in msg and "head.json" in msg and "emb/info.json" in msg
    assert "final_relu: True (head.json) vs False (emb/info.json)" in msg
    assert "postprocess" in msg
    require_compatible(s, s.replace(dtype="bfloat16"), expected_from="x", found_from="y")  # dtype is informative
