"""0.1 import paths (flat modules, CHANGELOG.md) still import, warn, and name the new place."""
import importlib
import sys
import warnings

import pytest

# (old module, name, module where the object lives now)
MOVED_NAMES = [
    ("surrogate_cell", "SurrogateCell", "neuron.cell"),
    ("cell_engine", "step_current", "stimuli.protocols"),
    ("cell_engine", "SurrogateCellError", "errors"),
    ("netpyne", "cell_rule", "integrations.netpyne"),
    ("netpyne", "swap_population", "integrations.netpyne"),
    ("models", "load_family", "detailed.pv_family"),
    ("models", "get_model", "detailed.pv_family"),
    ("simulate", "CellSpec", "detailed.spec"),
    ("simulate", "simulate", "simulation.simulate"),
    ("mechanisms", "build_mechanisms", "detailed.mechanisms"),
    ("protocols", "LongSquare", "stimuli.protocols"),
    ("datagen", "generate", "simulation.datagen"),
    ("datagen", "run_chunk", "simulation.engines"),
    ("protocols", "PRESETS", "stimuli.presets"),
    ("dataset", "open_dataset", "data.dataset"),
    ("features", "spike_times", "features.spikes"),
    ("features", "fi_curve", "features.ephys"),
    ("features", "FeatureScaler", "features.scaler"),
    ("feature_table", "extract_features", "features.table"),
    ("spike_metrics", "coincidence_gamma", "features.spike_metrics"),
    ("surrogate_model", "Surrogate", "surrogate.model"),
    ("surrogate_model", "SurrogateConfig", "surrogate.model"),
    ("embedding", "build_input", "surrogate.encoding"),
    ("checkpoint", "load_surrogate", "surrogate.checkpoint"),
    ("train", "TrainConfig", "training.train"),
    ("rollout", "rollout", "training.rollout"),
    ("evaluate", "evaluate_surrogate", "evaluation.evaluate"),
    ("plots", "plot_fi_curves", "evaluation.plots"),
]


@pytest.mark.parametrize("old, name, new", MOVED_NAMES)
def test_old_import_path_gives_the_moved_object(old, name, new):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        got = getattr(importlib.import_module(f"noble_neuron.{old}"), name)
    assert got is getattr(importlib.import_module(f"noble_neuron.{new}"), name)


def test_old_module_warns_with_its_new_place():
    sys.modules.pop("noble_neuron.surrogate_cell", None)
    with pytest.warns(DeprecationWarning, match=r"noble_neuron\.surrogate_cell moved to noble_neuron\.neuron\.cell"):
        importlib.import_module("noble_neuron.surrogate_cell")


def test_old_submodule_of_the_family_package_imports():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = importlib.import_module("noble_neuron.models.family_builder")
    new = importlib.import_module("noble_neuron.detailed.pv_family.family_builder")
    assert old.__name__ == "noble_neuron.models.family_builder"
    public = [n for n in dir(new) if not n.startswith("_") and callable(getattr(new, n))]
    assert public and all(getattr(old, n) is getattr(new, n) for n in public)


def test_removed_name_says_where_to_look():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ImportError, match=r"surrogate_model\.no_such_name no longer exists.*CHANGELOG\.md"):
            from noble_neuron.surrogate_model import no_such_name  # noqa: F401


def test_plain_import_reaches_old_modules_as_attributes():
    import noble_neuron

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert noble_neuron.netpyne.cell_rule is importlib.import_module("noble_neuron.integrations.netpyne").cell_rule
    with pytest.raises(AttributeError, match="no attribute 'not_a_module'"):
        noble_neuron.not_a_module


def test_changelog_lists_every_moved_module():
    from pathlib import Path

    from noble_neuron import _legacy

    text = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    for old in (*_legacy.MOVED, *_legacy.MOVED_PACKAGES):
        assert f"`noble_neuron.{old}`" in text, old
