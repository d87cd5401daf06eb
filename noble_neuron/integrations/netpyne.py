"""NetPyNE integration: a cell rule for surrogate PV cells, and a one-line population swap.

    netParams.cellParams['PV_surrogate'] = noble_neuron.integrations.netpyne.cell_rule()      # shipped network checkpoint
    netParams.popParams['PV']['cellType'] = 'PV_surrogate'                       # was 'PV_detailed'
    sim.createSimulateAnalyze(netParams, simConfig)

The rule is a plain NetPyNE dict: a one-compartment ``soma`` carrying an ``nn_VoltageDrive``
point process whose ``ckpt`` and ``neuron`` index the engine's registries of checkpoints and of
neurons' features (`engine().rule_checkpoints`, `engine().rule_neurons`): any feature set, any
number of checkpoints.
No ``vref`` (NetPyNE would then route every connection to the point process): synapses are
ordinary NetPyNE synMechs on ``soma`` (ExpSyn, Exp2Syn) and spikes are detected on soma v.
At every ``finitialize`` the engine (`noble_neuron.neuron.engine`) finds the drives NetPyNE made
and runs them in network mode; no extra call is needed.

Connections must target ``soma`` (the surrogate has no dendrites); ``check_connections``
names the ones that do not, so they are not silently dropped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..neuron.cell import SOMA_DIAM_UM, SOMA_L_UM
from ..constants import SPIKE_THRESHOLD_MV

__all__ = ["cell_rule", "check_connections", "hybrid_cell_rule", "swap_population"]

DRIVE_MECH = "nn_VoltageDrive"


def cell_rule(checkpoint: str | Path | None = None, *, model_id: str | None = None,
              features: Sequence[float] | Mapping[str, float] | None = None) -> dict[str, Any]:
    """A NetPyNE cell rule (dict) for a surrogate neuron of the network checkpoint.

    ``model_id`` (a family model) or raw ``features`` (the checkpoint's feature set, in order or
    a dict by name) choose the neuron; neither gives the checkpoint's default neuron. ``checkpoint`` (a network-mode
    checkpoint; default the shipped one) travels with the rule as an index into the engine's
    registry, so populations of different checkpoints run side by side.
    """
    from ..neuron.engine import engine
    from ..detailed.mechanisms import load_mechanisms
    from ..neuron.cell import resolve_surrogate

    load_mechanisms()
    s = resolve_surrogate(checkpoint, network=True)
    eng = engine()
    point = {"mod": DRIVE_MECH, "loc": 0.5, "ckpt": float(eng.register_rule_checkpoint(s))}
    if model_id is not None and features is not None:
        raise ValueError("pass model_id or features, not both")
    if model_id is not None:
        features = s.features_of(model_id)
    if features is not None:
        point["neuron"] = float(eng.register_rule_neuron([float(x) for x in s.feature_vector(features)]))
    return {
        "secs": {"soma": {"geom": {"L": SOMA_L_UM, "diam": SOMA_DIAM_UM, "nseg": 1, "Ra": 100.0, "cm": 1.0},
                          "mechs": {}, "pointps": {"surrogate": point}, "threshold": SPIKE_THRESHOLD_MV}},
    }


def hybrid_cell_rule(model: Any) -> dict[str, Any]:
    """A NetPyNE cell rule (dict) for a `HybridCell`: the model's soma and axon sections as they are (3-D points,
    passive properties, every density mechanism and ion reversal per segment) + its ``nn_DendriteLoad``.

    `model`: a family model id or a built `HybridCell`. The rule's ``globals`` carry ``celsius``: the channels'
    kinetics and the fitted load hold at that temperature only (NetPyNE's default ``cfg.hParams`` is 6.3 °C).
    """
    from neuron import h

    from ..neuron.hybrid_cell import HybridCell
    from ..simulation.dendrite_load import mechanism_parameters

    cell = model if isinstance(model, HybridCell) else HybridCell(model)
    names = {sec.name(): _rule_section_name(sec.name()) for sec in cell.sections}
    secs: dict[str, Any] = {}
    for sec in cell.sections:
        info = sec.psection()
        geom = {"L": sec.L, "nseg": sec.nseg, "Ra": sec.Ra, "cm": [seg.cm for seg in sec],
                "pt3d": [(sec.x3d(i), sec.y3d(i), sec.z3d(i), sec.diam3d(i)) for i in range(sec.n3d())]}
        if sec.nseg == 1:
            geom["cm"] = geom["cm"][0]
        mechs = {}
        for mech, params in info["density_mechs"].items():
            settable = _parameter_names(h, mech)
            mechs[mech] = {name: (values[0] if len(values) == 1 else list(values)) for name, values in params.items()
                           if name in settable}
        ions = {ion: {"e": float(info["ions"][ion][f"e{ion}"][0])} for ion in ("na", "k") if ion in info["ions"]}
        rule_sec: dict[str, Any] = {"geom": geom, "mechs": mechs, "ions": ions}
        parent = sec.parentseg()
        if parent is not None:
            rule_sec["topol"] = {"parentSec": names[parent.sec.name()], "parentX": parent.x,
                                 "childX": sec.orientation()}
        secs[names[sec.name()]] = rule_sec
    secs["soma"]["pointps"] = {"dendrite_load": {"mod": "nn_DendriteLoad", "loc": 0.5,
                                                  **mechanism_parameters(cell.load)}}
    secs["soma"]["threshold"] = SPIKE_THRESHOLD_MV
    return {"secs": secs, "globals": {"celsius": float(h.celsius)}}


def _parameter_names(h: Any, mech: str) -> set[str]:
    """The PARAMETER range variables of density mechanism `mech`, without the suffix ('gbar' of nn_NaT)."""
    standard, name = h.MechanismStandard(mech, 1), h.ref("")
    names = set()
    for i in range(int(standard.count())):
        standard.name(name, i)
        names.add(name[0][: -len(mech) - 1] if name[0].endswith("_" + mech) else name[0])
    return names


def _rule_section_name(hoc_name: str) -> str:
    """'PVBasket[3].axon[1]' → 'axon_1'; 'PVBasket[3].soma[0]' → 'soma' (NetPyNE connects synapses to 'soma')."""
    short = hoc_name.rsplit(".", 1)[-1]
    if short in ("soma[0]", "soma"):
        return "soma"
    return short.replace("[", "_").rstrip("]")


def swap_population(net_params: Any, pop: str, rule_name: str | None = None, *, hybrid: bool | None = None,
                    **rule_kwargs: Any) -> None:
    """Swap population `pop` to surrogate cells: add the cell rule and point the population at it.

    ``model_id`` alone of a family model whose dendritic load ships (or ``hybrid=True``): `HybridCell`s
    (`hybrid_cell_rule`), the network cells that keep spike timing; ``hybrid=False``, a checkpoint or features:
    streaming surrogates (`cell_rule`).
    """
    from ..neuron.hybrid_cell import has_shipped_load

    if pop not in net_params.popParams:
        raise KeyError(f"netParams has no population {pop!r} (has {sorted(net_params.popParams)})")
    if hybrid is None:
        hybrid = set(rule_kwargs) == {"model_id"} and has_shipped_load(rule_kwargs["model_id"])
    if hybrid:
        if set(rule_kwargs) != {"model_id"}:
            raise ValueError(f"hybrid=True takes only model_id (the detailed model to keep the soma and axon of), "
                             f"got {sorted(rule_kwargs)}")
        net_params.cellParams[rule_name or "PV_hybrid"] = hybrid_cell_rule(rule_kwargs["model_id"])
    else:
        net_params.cellParams[rule_name or "PV_surrogate"] = cell_rule(**rule_kwargs)
    net_params.popParams[pop]["cellType"] = rule_name or ("PV_hybrid" if hybrid else "PV_surrogate")
    check_connections(net_params, pop)


def check_connections(net_params: Any, pop: str) -> None:
    """Raise if a connection into `pop` targets a section other than ``soma`` (the surrogate has only a soma)."""
    bad = []
    for name, rule in net_params.connParams.items():
        post = rule.get("postConds", {})
        target = post.get("pop")
        targets = target if isinstance(target, (list, tuple)) else [target]
        if pop not in targets:
            continue
        secs = rule.get("sec", "soma")
        secs = secs if isinstance(secs, (list, tuple)) else [secs]
        if any(s != "soma" for s in secs):
            bad.append(f"{name} (sec={rule.get('sec')!r})")
    if bad:
        raise ValueError(f"connections into surrogate population {pop!r} target sections it does not have: "
                         f"{', '.join(bad)}; the surrogate is a single soma, so set 'sec': 'soma' on them")
