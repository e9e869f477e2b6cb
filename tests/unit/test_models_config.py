"""models_config.json in the seed's shape, and the atomic write that saves it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from system.edge.atomic import remove_stale_temporaries, write_bytes_atomically, write_json_atomically
from system.edge.models_config import ModelEntry, ModelsConfig, ModelsConfigFile, parse_models_config
from system.edge.roster import DEFAULT_MAPPINGS
from system.errors import ConfigError

SEED_FILE = {
    "mappings": {"image-classification-app": "img-classification", "image-segmentation-app": "unet"},
    "models": [
        {"name": "img-classification", "version": "1", "identifier": "img-classification-1"},
        {"name": "unet", "version": "3", "identifier": "unet-3"},
    ],
}


def write(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def leftovers(folder: Path) -> list[str]:
    """Files in `folder` other than models_config.json (temp files of an atomic write)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "models_config.json")


# Reading


def test_the_seeds_file_round_trips_unchanged(tmp_path: Path) -> None:
    config_file = ModelsConfigFile(write(tmp_path / "models_config.json", SEED_FILE))
    config = config_file.load()
    assert config.entry("unet") == ModelEntry("unet", "3", "unet-3")
    config_file.save(config)
    assert json.loads(config_file.path.read_text()) == SEED_FILE


def test_a_missing_file_gives_the_seeds_default_mappings_and_no_models(tmp_path: Path) -> None:
    config = ModelsConfigFile(tmp_path / "models_config.json").load()
    assert config.mappings == dict(DEFAULT_MAPPINGS)
    assert config.models == ()
    assert not (tmp_path / "models_config.json").exists()  # loading writes nothing


def test_a_file_without_mappings_gets_the_default_mappings() -> None:
    config = parse_models_config({"models": []})
    assert config.mappings == {"image-classification-app": "img-classification", "image-segmentation-app": "unet"}


def test_unknown_top_level_keys_survive_a_rewrite(tmp_path: Path) -> None:
    raw = {**SEED_FILE, "comment": "installed by hand", "site": {"line": 4}}
    config_file = ModelsConfigFile(write(tmp_path / "models_config.json", raw))
    config_file.save(config_file.load().with_model(ModelEntry("unet", "4", "unet-4")))
    saved = json.loads(config_file.path.read_text())
    assert saved["comment"] == "installed by hand" and saved["site"] == {"line": 4}
    assert saved["models"][1] == {"name": "unet", "version": "4", "identifier": "unet-4"}


def test_a_missing_identifier_is_made_from_name_and_version_as_the_seed_did() -> None:
    config = parse_models_config({"models": [{"name": "unet", "version": "1.2"}]})
    assert config.models == (ModelEntry("unet", "1.2", "unet-1-2"),)


@pytest.mark.parametrize(("version", "text"), [(3, "3"), (1.2, "1.2")])
def test_a_version_given_as_a_number_becomes_a_string(version: float, text: str) -> None:
    [entry] = parse_models_config({"models": [{"name": "unet", "version": version}]}).models
    assert entry.version == text
    assert entry.identifier == f"unet-{text.replace('.', '-')}"


def test_a_model_listed_twice_is_refused() -> None:
    raw = {"models": [{"name": "unet", "version": "1"}, {"name": "unet", "version": "2"}]}
    with pytest.raises(ConfigError, match=r"model 'unet' is listed twice"):
        parse_models_config(raw)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([], "must hold a JSON object"),
        ({"mappings": ["image-segmentation-app"]}, "'mappings' must map"),
        ({"mappings": {"image-segmentation-app": 7}}, "'mappings' must map"),
        ({"mappings": {"": "unet"}}, "'mappings' must map"),
        ({"models": {"unet": "3"}}, "'models' must be a list"),
        ({"models": ["unet"]}, r"models\[0\] needs 'name' and 'version'"),
        ({"models": [{"name": "unet"}]}, r"models\[0\] needs 'name' and 'version'"),
        ({"models": [{"name": "unet", "version": True}]}, r"models\[0\] needs 'name' and 'version'"),
        ({"models": [{"name": "unet", "version": ["3"]}]}, r"models\[0\] needs 'name' and 'version'"),
        ({"models": [{"name": "unet", "version": "3", "identifier": 3}]}, r"models\[0\].identifier must be a string"),
    ],
    ids=[
        "not-an-object",
        "mappings-list",
        "mapping-to-number",
        "empty-app-name",
        "models-object",
        "model-not-object",
        "no-version",
        "boolean-version",
        "list-version",
        "number-identifier",
    ],
)
def test_wrong_types_are_a_config_error_naming_the_file(tmp_path: Path, raw: Any, problem: str) -> None:
    path = write(tmp_path / "models_config.json", raw)
    with pytest.raises(ConfigError, match=problem) as caught:
        ModelsConfigFile(path).load()
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("text", ["{not json", "", '{"models": [}'])
def test_a_file_that_is_not_json_is_a_config_error_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "models_config.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"cannot read .*models_config\.json"):
        ModelsConfigFile(path).load()


# Changing


def test_with_model_replaces_the_same_name_in_place() -> None:
    config = parse_models_config(SEED_FILE)
    changed = config.with_model(ModelEntry("img-classification", "2", "img-classification-2"))
    assert [m.identifier for m in changed.models] == ["img-classification-2", "unet-3"]
    assert [m.identifier for m in config.models] == ["img-classification-1", "unet-3"]  # the original is unchanged


def test_with_model_appends_a_new_name() -> None:
    config = ModelsConfig().with_model(ModelEntry("unet", "1", "unet-1"))
    changed = config.with_model(ModelEntry("img-classification", "1", "img-classification-1"))
    assert [m.name for m in changed.models] == ["unet", "img-classification"]


def test_without_model_removes_only_that_name() -> None:
    config = parse_models_config(SEED_FILE).without_model("unet")
    assert [m.name for m in config.models] == ["img-classification"]


# Saving atomically


def test_save_creates_the_folder_and_leaves_no_temp_file(tmp_path: Path) -> None:
    config_file = ModelsConfigFile(tmp_path / "device" / "models_config.json")
    config_file.save(ModelsConfig().with_model(ModelEntry("unet", "2", "unet-2")))
    config_file.save(config_file.load().with_model(ModelEntry("unet", "3", "unet-3")))
    assert config_file.load().entry("unet") == ModelEntry("unet", "3", "unet-3")
    assert leftovers(config_file.path.parent) == []


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = ModelsConfigFile(write(tmp_path / "models_config.json", SEED_FILE))
    before = config_file.path.read_bytes()
    renames: list[tuple[str, str]] = []

    def failing_replace(source: str, target: str) -> None:
        renames.append((str(source), str(target)))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("system.edge.atomic.os.replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        config_file.save(config_file.load().with_model(ModelEntry("unet", "4", "unet-4")))
    monkeypatch.undo()
    assert len(renames) == 1 and renames[0][1] == str(config_file.path)  # it got as far as the rename
    assert config_file.path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_an_interrupted_write_removes_the_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    write_json_atomically(target, {"v": 1})

    def interrupted_fsync(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("system.edge.atomic.os.fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomically(target, b'{"v": 2}')
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_temp_files_left_by_a_kill_before_the_rename_are_removed_and_nothing_else(tmp_path: Path) -> None:
    target = write(tmp_path / "models_config.json", SEED_FILE)
    stale = [tmp_path / ".models_config.json.k3j2x.tmp", tmp_path / ".models_config.json.a9.tmp"]
    kept = [tmp_path / n for n in (".journal.json.q1.tmp", "models_config.json.bak", "x.models_config.json.1.tmp")]
    for path in (*stale, *kept):
        path.write_text("{")
    assert sorted(remove_stale_temporaries(target)) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (target, *kept))
    assert remove_stale_temporaries(tmp_path / "absent" / "journal.json") == []


def test_write_json_atomically_writes_indented_json_with_a_final_newline(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_json_atomically(target, {"b": 1, "a": [1, 2]})
    text = target.read_text()
    assert text.endswith("}\n") and json.loads(text) == {"b": 1, "a": [1, 2]}
    assert list(json.loads(text)) == ["b", "a"]  # key order kept, not sorted
