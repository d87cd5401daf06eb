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

__all__ = ["cell_rule", "check_connections", "swap_population"]

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


def swap_population(net_params: Any, pop: str, rule_name: str = "PV_surrogate", **rule_kwargs: Any) -> None:
    """Swap population `pop` to the surrogate: add the cell rule and point the population at it."""
    if pop not in net_params.popParams:
        raise KeyError(f"netParams has no population {pop!r} (has {sorted(net_params.popParams)})")
    net_params.cellParams[rule_name] = cell_rule(**rule_kwargs)
    net_params.popParams[pop]["cellType"] = rule_name
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
