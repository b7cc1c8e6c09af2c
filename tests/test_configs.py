"""`autosimulate_tf.configs`: finding the shipped gin files and parsing gin strictly.

Covers `shipped_gin_files` (the top-level `gin/` folder of a source checkout),
`resolve_gin_file` (an existing path as given, a bare name from the search folders or the
shipped folder, `FileNotFoundError` naming the file otherwise) and `parse_gin` (files,
includes and bindings applied in order; a misspelled configurable or parameter raises a
gin `ValueError` naming it).
"""

import os

import gin
import pytest

from autosimulate_tf import configs

# A source checkout keeps them in the top-level gin/ folder, an installed wheel in autosimulate_tf/gin/.
GIN_DIR = configs.gin_dir()


def test_shipped_gin_files_lists_the_toy_and_pools_configs():
    assert os.path.basename(GIN_DIR) == "gin"
    files = configs.shipped_gin_files()
    assert os.path.join(GIN_DIR, "toy_gmm.gin") in files
    assert os.path.join(GIN_DIR, "pools.gin") in files
    assert files == sorted(files)
    assert all(os.path.isabs(path) and os.path.isfile(path) and path.endswith(".gin") for path in files)
    assert {os.path.basename(path) for path in files} == {name for name in os.listdir(GIN_DIR) if name.endswith(".gin")}


def test_resolve_gin_file_finds_a_shipped_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert configs.resolve_gin_file("toy_gmm.gin") == os.path.join(GIN_DIR, "toy_gmm.gin")
    assert configs.resolve_gin_file("pools.gin") == os.path.join(GIN_DIR, "pools.gin")


def test_resolve_gin_file_returns_an_existing_path_as_given(tmp_path, monkeypatch):
    custom = tmp_path / "toy_gmm.gin"  # same name as a shipped file: the explicit path wins
    custom.write_text("mlp.seed = 3\n")
    assert configs.resolve_gin_file(str(custom)) == str(custom)
    monkeypatch.chdir(tmp_path)
    assert configs.resolve_gin_file("toy_gmm.gin") == "toy_gmm.gin"


def test_resolve_gin_file_searches_the_given_folders(tmp_path):
    (tmp_path / "mine.gin").write_text("mlp.seed = 3\n")
    assert configs.resolve_gin_file("mine.gin", [str(tmp_path / "absent"), str(tmp_path)]) == str(tmp_path / "mine.gin")


def test_resolve_gin_file_raises_naming_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"'toy_gmn\.gin' not found") as error:
        configs.resolve_gin_file("toy_gmn.gin")
    assert GIN_DIR in str(error.value), "the message should list the folders searched"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.gin"):
        configs.resolve_gin_file(str(tmp_path / "nowhere.gin"), [str(tmp_path)])
    with pytest.raises(FileNotFoundError, match=r"missing\.gin"):
        configs.parse_gin(["missing.gin"])


def test_parse_gin_applies_files_then_bindings():
    configs.parse_gin(["toy_gmm.gin"], ["xor_mixture_real_data.num_validation = 7"])
    assert gin.query_parameter("xor_mixture_real_data.num_validation") == 7
    assert gin.query_parameter("xor_mixture_real_data.num_test") == 4000
    assert gin.query_parameter("GaussianMixtureSimulator.noise_scale") == 1.0


def test_parse_gin_resolves_includes_of_shipped_files(tmp_path):
    custom = tmp_path / "variant.gin"
    custom.write_text("include 'pools.gin'\nxor_pools.pool_size = 12\n")
    configs.parse_gin([str(custom)])
    assert gin.query_parameter("xor_pools.pool_size") == 12
    assert gin.query_parameter("xor_pools.label_noise") == 0.5


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        ("AutoSimulateTrainer.dampin = 0.1", "doesn't have a parameter named 'dampin'"),
        ("AutoSimulateTrainr.damping = 0.1", "No configurable matching 'AutoSimulateTrainr'"),
        ("xor_pools.pool_sise = 10", "doesn't have a parameter named 'pool_sise'"),
    ],
)
def test_parse_gin_rejects_a_misspelled_binding_naming_it(binding, message):
    with pytest.raises(ValueError, match=message):
        configs.parse_gin(["toy_gmm.gin"], [binding])


def test_parse_gin_rejects_a_misspelled_binding_in_a_file(tmp_path):
    custom = tmp_path / "typo.gin"
    custom.write_text("include 'toy_gmm.gin'\nGaussianMixtureSimulator.noise_scal = 0.5\n")
    with pytest.raises(ValueError, match="noise_scal") as error:
        configs.parse_gin([str(custom)])
    assert "typo.gin" in str(error.value), "the error should point at the file"
