"""A small BluePyOpt cell model on the own-model example morphology: pas everywhere, HH on the
soma, an apical Ih whose density grows with distance (NrnSegmentSomaDistanceScaler)."""
from pathlib import Path

import bluepyopt.ephys as ephys

OWN = Path(__file__).resolve().parent.parent.parent / "examples" / "own_model"


def cell_model() -> ephys.models.CellModel:
    loc = {n: ephys.locations.NrnSeclistLocation(n, seclist_name=n) for n in ("all", "somatic", "apical")}
    mechs = [ephys.mechanisms.NrnMODMechanism("pas", suffix="pas", locations=[loc["all"]]),
             ephys.mechanisms.NrnMODMechanism("hh", suffix="hh", locations=[loc["somatic"]]),
             ephys.mechanisms.NrnMODMechanism("demo_ih", suffix="demo_ih", locations=[loc["apical"]])]
    scaler = ephys.parameterscalers.NrnSegmentSomaDistanceScaler(
        distribution="{value} * math.exp({distance} / 150.0)")
    params = [
        ephys.parameters.NrnSectionParameter("g_pas", param_name="g_pas", value=5e-5, frozen=True, locations=[loc["all"]]),
        ephys.parameters.NrnSectionParameter("e_pas", param_name="e_pas", value=-70, frozen=True, locations=[loc["all"]]),
        ephys.parameters.NrnSectionParameter("gnabar_hh", param_name="gnabar_hh", bounds=[0.05, 0.2],
                                             locations=[loc["somatic"]]),
        ephys.parameters.NrnRangeParameter("gbar_demo_ih", param_name="gbar_demo_ih", bounds=[1e-6, 1e-4],
                                           value_scaler=scaler, locations=[loc["apical"]]),
        ephys.parameters.NrnGlobalParameter("celsius", param_name="celsius", value=6.3, frozen=True),
    ]
    morph = ephys.morphologies.NrnFileMorphology(str(OWN / "morph.swc"), do_replace_axon=False)
    return ephys.models.CellModel("BpoCell", morph=morph, mechs=mechs, params=params)
