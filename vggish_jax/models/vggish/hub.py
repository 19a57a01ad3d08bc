"""A VGGish model as a shareable folder: safetensors weights, a JSON config and a model card. No pickle.

What `VGGish.save_pretrained(dir)` writes and `VGGish.from_pretrained(dir)` reads:
    DIR/model.safetensors  float32 'conv1.kernel', ..., 'fc2.bias' (params.py layout flattened with '.'),
                           and 'pca.eigen_vectors', 'pca.means' when the model has PCA
    DIR/config.json        {"format": FORMAT, "model": "vggish", "width_divisor", "final_relu",
                            "weights_sha256", "pca_sha256", "spec": EmbeddingSpec.to_dict(), ...provenance}
    DIR/README.md          the model card (plain text with YAML metadata)
`load` recomputes the recorded hashes, so an edited or swapped file is one line naming it. `resolve("org/name")`
fetches such a folder from the Hugging Face Hub. Needs safetensors (+ huggingface_hub): the [hub] extra.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from vggish_jax import atomic
from vggish_jax.models.vggish import params as params_lib
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.postprocess import PCAParams
from vggish_jax.spec import params_sha256

FORMAT = "vggish-jax-safetensors-1"
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"


# A Hub repo id: "org/name" (letters, digits, '-', '_', '.'), as huggingface_hub validates it.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def resolve(name: str | os.PathLike) -> str | os.PathLike:
    """The local folder huggingface_hub downloads `name` to (only this layout's three files) when no such
    path exists here and `name` looks like a Hub repo id ("org/name"); else `name` itself (a missing one is
    then named by the loader, with how to convert weights into it)."""
    text = os.fspath(name)
    if os.path.exists(text) or not _REPO_ID.fullmatch(text) or ".." in text:
        return name
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise WeightsError(f"{text}: no such folder here, and loading it from the Hugging Face Hub needs "
                           f"huggingface_hub; pip install 'vggish-jax[hub]'") from None
    try:
        return snapshot_download(repo_id=text, allow_patterns=[WEIGHTS, CONFIG, CARD])
    except Exception as e:  # huggingface_hub's HTTP, offline and not-found errors have no common base class
        raise WeightsError(f"{text}: no such folder here, and not loadable from the Hugging Face Hub "
                           f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); check the name and the "
                           f"network, or pass a local folder written by `vggish-jax convert --out DIR`") from None


def is_hub_folder(directory: str | os.PathLike) -> bool:
    return (os.path.isfile(os.path.join(directory, CONFIG))
            and not os.path.isdir(os.path.join(directory, params_lib.TREE)))


def save(directory: str | os.PathLike, params: dict, *, pca: PCAParams | None, config: dict[str, Any]) -> str:
    """Write the three files under `directory` (created); `config` adds to what is recorded (spec, provenance)."""
    st = _safetensors()
    directory = os.path.abspath(os.fspath(directory))
    tensors = {f"{layer}.{k}": np.ascontiguousarray(v, np.float32) for layer, d in params.items() for k, v in d.items()}
    pca_tree = None
    if pca is not None:
        pca_tree = {"eigen_vectors": pca.eigen_vectors.astype(np.float32), "means": pca.means.astype(np.float32)}
        tensors.update({f"pca.{k}": v for k, v in pca_tree.items()})
    os.makedirs(directory, exist_ok=True)
    with atomic.replacing(os.path.join(directory, WEIGHTS)) as f:
        f.write(st.save(tensors, metadata={"format": FORMAT}))
    weights = {layer: {k: tensors[f"{layer}.{k}"] for k in d} for layer, d in params.items()}
    config = {**config, "format": FORMAT, "model": "vggish",
              "width_divisor": params_lib.width_divisor_of_params(params), "weights_sha256": params_sha256(weights),
              "pca_sha256": params_sha256(pca_tree) if pca_tree is not None else None}
    atomic.write_json(os.path.join(directory, CONFIG), config, sort_keys=True)
    atomic.write_text(os.path.join(directory, CARD), model_card(config))
    return directory


def load(directory: str | os.PathLike) -> tuple[dict, PCAParams | None, dict]:
    """(params, pca or None, config) from a folder written by `save`: the same as params.load returns."""
    st = _safetensors()
    directory = os.path.abspath(os.fspath(directory))
    config_path, weights_path = os.path.join(directory, CONFIG), os.path.join(directory, WEIGHTS)
    redo = "save the model again with VGGish.save_pretrained, or get an unmodified copy"
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{config_path}: unreadable ({type(e).__name__}: {e}); {redo}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise WeightsError(f"{config_path}: not a {FORMAT} config (format {found!r}); {redo}")
    try:
        tensors = st.load_file(weights_path)
    except Exception as e:  # safetensors raises its own SafetensorError, and OSError for a missing file
        raise WeightsError(f"{weights_path}: not a readable safetensors file ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:200]}); {redo}") from None
    tree: dict = {}
    for name, value in tensors.items():
        layer, _, part = name.partition(".")
        if not part:
            raise WeightsError(f"{weights_path}: unexpected tensor {name!r}; {redo}")
        tree.setdefault(layer, {})[part] = value
    pca_tree = tree.pop("pca", None)
    divisor = int(config.get("width_divisor") or 1)
    try:
        params_lib.validate(tree, weights_path, divisor)
    except WeightsError as e:
        raise WeightsError(f"{e}, as {CONFIG} records; {redo}") from None
    if params_sha256(tree) != config.get("weights_sha256"):
        raise WeightsError(f"{weights_path}: its weights are not the ones {CONFIG} records (content hash "
                           f"{params_sha256(tree)[:12]} vs {str(config.get('weights_sha256'))[:12]}); {redo}")
    pca = None
    if pca_tree is not None or config.get("pca_sha256") is not None:
        if pca_tree is None or params_sha256(pca_tree) != config.get("pca_sha256"):
            raise WeightsError(f"{weights_path}: its PCA params are not the ones {CONFIG} records; {redo}")
        try:
            pca = PCAParams(pca_tree["eigen_vectors"], pca_tree["means"])
        except (KeyError, ValueError) as e:
            raise WeightsError(f"{weights_path}: bad PCA params ({e}); {redo}") from None
    return tree, pca, config


def model_card(config: dict) -> str:
    """README.md: what the model is, how to load it, and what its embeddings are."""
    spec = config.get("spec") or {}
    small = "" if config.get("width_divisor", 1) == 1 else (
        f"\n**Not the published VGGish**: every hidden width is divided by {config['width_divisor']} "
        f"(a same-shaped small model for tests and experiments).\n")
    source = config.get("source")
    provenance = (f"Converted from: {source}." if source and source != "random" else
                  f"Random initialisation (seed {config.get('seed')}), not trained weights." if source else
                  "Provenance: not recorded.")
    return f"""---
license: apache-2.0
library_name: vggish-jax
tags: [audio, embeddings, vggish, jax, flax]
---
# VGGish (vggish-jax)

VGGish audio embeddings (Hershey et al., 2017, "CNN Architectures for Large-Scale Audio Classification") in
Flax NNX: [batch, 96, 64] log-mel examples of 0.96 s of 16 kHz audio -> [batch, 128] embeddings.
{small}
```python
import vggish_jax
model = vggish_jax.VGGish.from_pretrained("THIS_FOLDER")
e = vggish_jax.embed(waveform, sample_rate, model)
```

- Final ReLU: {config.get("final_relu")} (torchvggish applies one, the current TensorFlow release does not).
- PCA postprocessing params: {"included" if config.get("pca_sha256") else "not included"}.
- Weights content hash (sha256): `{config.get("weights_sha256")}`.
- Embedding spec: `{json.dumps(spec, sort_keys=True)}`.
- {provenance}

Files: `{WEIGHTS}` (float32 safetensors, TF-slim layer names, HWIO / [in, out] kernels), `{CONFIG}`.
The original VGGish weights are released by Google under the Apache License 2.0 (tensorflow/models,
research/audioset/vggish).
"""


def _safetensors():
    try:
        import safetensors.numpy as st
    except ImportError as e:
        raise WeightsError("the safetensors model folder needs safetensors; pip install 'vggish-jax[hub]'") from e
    return st
