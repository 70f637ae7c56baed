"""Choosing an embedded model: `local`, `local:small`, `local:PATH`, and their options from config, env and CLI."""

from __future__ import annotations

import pytest

from orquestra.config import load_settings
from orquestra.exceptions import ModelConfigError, UserError
from orquestra.models import infer_model
from orquestra.models.local import DEFAULT_CONTEXT, LocalModel
from orquestra.weights import QWEN_05B, QWEN_15B
from tests.helpers import orquestra


def test_local_is_the_15b_and_local_small_the_05b():
    default, small = infer_model("local"), infer_model("local:small")
    assert isinstance(default, LocalModel) and isinstance(small, LocalModel)
    assert (default.name, default.weights, default.path) == ("local", QWEN_15B, None)
    assert (small.name, small.weights, small.path) == ("local:small", QWEN_05B, None)
    assert default.context_window == small.context_window == DEFAULT_CONTEXT
    assert small.plans_in_stages and not default.plans_in_stages  # the planning each was measured to do best


def test_a_gguf_file_of_ones_own_is_a_model(tmp_path):
    model_file = tmp_path / "my-model.gguf"
    model_file.write_bytes(b"GGUF" + bytes(60))
    model = infer_model(f"local:{model_file}")
    assert isinstance(model, LocalModel)
    assert model.path == model_file and model.name == f"local:{model_file}"
    assert "my-model.gguf" in model.describe() and not model.plans_in_stages


def test_a_missing_file_is_named_with_the_embedded_models(tmp_path):
    with pytest.raises(
        ModelConfigError, match=r"no such model file .*nope\.gguf \(embedded models: local, local:small\)"
    ):
        infer_model(f"local:{tmp_path / 'nope.gguf'}")


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelConfigError, match="is not a GGUF file"):
        infer_model(f"local:{text}")


def test_context_and_threads_come_from_the_config_file_and_the_environment(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("local:\n  context: 8192\n  threads: 1\n")
    model = infer_model("local:small", settings=load_settings(config))
    assert isinstance(model, LocalModel) and (model.context_window, model.n_threads) == (8192, 1)
    monkeypatch.setenv("ORQUESTRA_LOCAL_CONTEXT", "2048")
    model = infer_model("local", settings=load_settings(config))
    assert isinstance(model, LocalModel) and (model.context_window, model.n_threads) == (2048, 1)


def test_bad_local_options_name_where_they_are(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("local:\n  context: 100\n")
    with pytest.raises(UserError, match=r"config\.yaml: .*local\.context"):
        load_settings(config)
    monkeypatch.setenv("ORQUESTRA_LOCAL_THREADS", "many")
    with pytest.raises(UserError, match="environment variable ORQUESTRA_LOCAL_THREADS: expected a whole number"):
        load_settings()


def test_the_cli_sets_the_context_for_every_command(tmp_path):
    result = orquestra("--local-context", "100", "registry", "list")
    assert result.returncode == 2 and "--local-context" in result.stderr and "Traceback" not in result.stderr
    listed = orquestra("--local-context", "8192", "--local-threads", "1", "registry", "list")
    assert listed.returncode == 0, listed.stderr


@pytest.mark.slow
def test_a_gguf_path_loads_with_the_chat_template_read_from_the_file(weights_home):
    model = infer_model(f"local:{weights_home / 'models' / QWEN_05B.filename}")
    assert isinstance(model, LocalModel)
    llama = model.load()
    assert "tokenizer.chat_template" in llama.metadata
    assert llama.chat_format == "chat_template.default"  # llama-cpp-python's name for the file's own template
