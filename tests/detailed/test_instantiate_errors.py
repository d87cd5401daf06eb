"""Messages of a published model that does not load or compile: NEURON's own error, and the fix."""
import os
import stat
import sys

import pytest

from noble_neuron.detailed.spec import CellSpec
from noble_neuron.errors import MechanismError, SimulationError


def test_a_template_needing_import3d_names_the_preload(tmp_path):
    from noble_neuron.detailed.instantiate import instantiate_cell

    hoc = tmp_path / "needs3d.hoc"
    hoc.write_text("begintemplate NeedsImport3dT\npublic soma\ncreate soma\nproc init() { localobj r\n"
                   "  r = new Import3d_Missing_reader()\n}\nendtemplate NeedsImport3dT\n")
    with pytest.raises(SimulationError, match=r"Import3d_Missing_reader is not a template.*--preload import3d\.hoc"):
        instantiate_cell(CellSpec("n3d", str(hoc), "NeedsImport3dT", None, {}))
    other = tmp_path / "needs_other.hoc"
    other.write_text("begintemplate NeedsOtherT\npublic soma\ncreate soma\nproc init() { localobj r\n"
                     "  r = new UserHelperMissing()\n}\nendtemplate NeedsOtherT\n")
    with pytest.raises(SimulationError, match=r"UserHelperMissing is defined nowhere yet.*--preload"):
        instantiate_cell(CellSpec("nother", str(other), "NeedsOtherT", None, {}))


def test_nrnivmodl_beside_the_running_python_is_found_without_path(tmp_path, monkeypatch):
    from noble_neuron.detailed import mechanisms

    fake_bin = tmp_path / "venv" / "bin"
    fake_bin.mkdir(parents=True)
    tool = fake_bin / "nrnivmodl"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "executable", str(fake_bin / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert mechanisms.find_nrnivmodl() == str(tool)  # a venv's interpreter run without activating the venv
    tool.unlink()
    with pytest.raises(MechanismError, match="neither beside this Python"):
        mechanisms.find_nrnivmodl()
    assert os.environ["PATH"] == str(tmp_path / "empty")


def test_a_model_under_a_non_ascii_folder_loads(tmp_path):
    """NEURON 9 takes only ASCII strings; a template in `modèle/` is loaded through an ASCII link."""
    from conftest import DATA
    from noble_neuron.detailed.instantiate import instantiate_cell
    from noble_neuron.detailed.spec import CellSpec

    folder = tmp_path / "modèle_é"
    folder.mkdir()
    template = folder / "cellule.hoc"
    template.write_text((DATA / "ball_stick.hoc").read_text().replace("BallStick", "BallStickAccents"))
    cell = instantiate_cell(CellSpec("m", str(template), "BallStickAccents", None, {}))
    assert cell.soma[0].L > 0
