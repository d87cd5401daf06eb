"""SurrogateCell: a NEURON cell whose somatic voltage comes from the trained FNO.

Use it exactly like a detailed cell::

    cell = SurrogateCell()                       # shipped checkpoint, default family neuron
    stim = h.IClamp(cell.soma(0.5)); stim.delay, stim.dur, stim.amp = 15, 400, 0.3
    v = h.Vector().record(cell.soma(0.5)._ref_v)
    h.finitialize(-70); h.continuerun(515)

``cell.soma`` is a real one-compartment Section. A stiff voltage source
(``mod/nn_VoltageDrive.mod``, i = (vc − v)/rs with rs = 1 kΩ) imposes the prediction on it;
its target ``vc`` is a continuous ``Vector.play`` of the predicted trace. Why this
mechanism and not the alternatives (measured, NEURON_NOTES.md): playing into ``v``
directly breaks under CVode (v is an integrator state), SEClamp with discrete play lags a
whole step (7 mV at spikes); a point-process clamp with a continuously played target tracks
the prediction to ~0.001 mV under fixed step (any dt) and CVode, NetCon threshold detection
works unchanged, and the mechanism has no VERBATIM (CoreNEURON-compatible).

The engine (`noble_neuron.neuron.engine`) predicts all SurrogateCells in one batched call
per ``finitialize``. Inputs it understands: IClamps on the soma (delay/dur/amp read at
finitialize, so values set after construction count) and waveforms given with
`SurrogateCell.inject_current`. Anything else on the soma (synapses, SEClamps, inserted
channels, ``Vector.play`` into an IClamp ``amp``) is refused with an error saying why:
a whole-trace surrogate cannot react to inputs it cannot see in advance.

``SurrogateCell(..., network=True)`` gives a cell for networks: for a family model whose detailed model and
fitted dendritic load ship, a `HybridCell` (its own soma and axon, the dendrites as the current they draw: the
network cell that keeps spike timing, docs/network_mode.md); otherwise, and with ``network="streaming"``, a
streaming checkpoint in network mode (`noble_neuron.neuron.network`): ExpSyn/Exp2Syn on the soma, closed loop,
any run length.

The engines use a cell only through `noble_neuron.neuron.port.EngineCell`: ``clamp_target``,
``prediction_mV``, ``prediction_key``, ``injected_waveforms``, ``check_soma``,
``point_processes``, ``iclamps``, ``clamp_settings``, ``input_signature``, ``render_input``,
``set_prediction`` and ``report_domain`` (plus ``index``, ``surrogate``, ``features``,
``model_id``, ``soma`` and ``drive``).
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..stimuli.protocols import step_current
from .engine import SurrogateCellError, engine, is_single_step, register_drive_adopter
from .network import SUPPORTED_SYNAPSES as _NETWORK_SYNAPSES, clamp_buffer_samples
from ..surrogate.config import positive_int
from ..surrogate.model import AccuracyWarning, DomainWarning, Surrogate
from ..surrogate.measured import MeasuredCell, as_fi_curve
from ..surrogate.step_trains import StepTrains
from ..validation import is_real

__all__ = ["SurrogateCell", "SurrogateCellError"]

SOMA_L_UM = 15.0
SOMA_DIAM_UM = 15.0
_ALLOWED_POINT_PROCESSES = ("IClamp", "nn_VoltageDrive")


def resolve_surrogate(checkpoint: str | Path | Surrogate | None, network: bool = False) -> Surrogate:
    if isinstance(checkpoint, Surrogate):
        s = checkpoint
    else:
        from ..surrogate.checkpoint import SHIPPED_NETWORK_CHECKPOINT, default_surrogate

        s = default_surrogate(SHIPPED_NETWORK_CHECKPOINT if network and checkpoint is None else checkpoint)
    if network and not s.is_streaming:
        raise ValueError("network=True needs a streaming (network-mode) checkpoint; this one predicts whole "
                         "traces (leave checkpoint=None for the shipped network checkpoint, or train one with "
                         "`noble-neuron train --config streaming_cpu`)")
    return s


#: memory a SurrogateCell holds once run, per sample of its checkpoint's trace (bytes): 0.62 MiB measured per cell
#: of 300 sampled cells after a 515 ms run (8583 samples: prediction, recorded and played vectors)
BYTES_PER_SAMPLE_PER_CELL = 76


def _available_memory_bytes() -> int | None:
    """Free physical memory (bytes) where the OS says (Linux, macOS), else None."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


_CAVEATS_SHOWN: set[tuple[int, bool]] = set()  # one AccuracyWarning per checkpoint and cell kind per process


def _check_measured_applies(s: Surrogate, model_id: str | None) -> None:
    """Refuse fi_curve/step_trains where they would be ignored: a training model (it fires its own trains) or a
    checkpoint without step trains."""
    if not s.config.is_event_model or not any(getattr(b, "trains", None) is not None for b in s.backbones.values()):
        raise ValueError("fi_curve, step_trains and neuron choose among the step trains a checkpoint's backbones "
                         "carry; this checkpoint has none (refit them with `noble-neuron fit-backbone`)")
    if model_id is not None and getattr(s.backbones.get(model_id), "trains", None) is not None:
        raise ValueError(f"{model_id} is a training model: it fires its own step trains, so fi_curve and step_trains "
                         "would be ignored; they are for neurons given by features and for unseen models")


def _warn_accuracy_once(s: Surrogate, own_step_trains: bool, measured: bool = False) -> None:
    caveat = s.whole_trace_caveat(own_step_trains)
    if caveat is not None and (id(s), own_step_trains) not in _CAVEATS_SHOWN:
        _CAVEATS_SHOWN.add((id(s), own_step_trains))
        hint = "" if own_step_trains or measured else (
            "; give its measured FI curve (fi_curve=(amps_nA, rates_Hz)) or recorded trains (step_trains=) for its counts")
        ev = s.metrics.get("evaluation") or {}
        with_fi = ev.get("spike_count_rel_error_firing_unseen_models_fi_points")
        if hint and with_fi is not None:
            hint += f" (spike counts off by {100 * with_fi:.0f} % on the unseen models given theirs)"
        warnings.warn(f"whole-trace checkpoint: {caveat}{hint}; its spikes are not a substitute for the detailed "
                      "model (docs/surrogate.md, accuracy table)", AccuracyWarning, stacklevel=4)


def default_model_id(surrogate: Surrogate) -> str:
    """The training model whose scaled features are closest to the training median (a typical neuron)."""
    ids = [m for m in surrogate.train_model_ids if m in surrogate.model_features]
    if not ids:
        raise SurrogateCellError("this checkpoint stores no per-model features; pass features={name: value} for "
                                 f"its feature set {list(surrogate.config.feature_names)}")
    scaled = surrogate.feature_scaler.transform(np.stack([surrogate.features_of(m) for m in ids]))
    return ids[int(np.argmin(np.linalg.norm(scaled - np.median(scaled, axis=0), axis=1)))]


#: ``network=``: False (whole-trace), True (the most faithful network cell for the neuron: a `HybridCell` where the
#: detailed model and its fitted dendritic load ship, else the streaming surrogate), or one of them by name
NETWORK_CHOICES = (False, True, "streaming", "hybrid")


def _measured_neuron(neuron, s: Surrogate):
    """(features (F,), `MeasuredNeuron`) of ``neuron=``: a `MeasuredNeuron` or the path of its JSON file."""
    from ..recordings.measure import MeasuredNeuron, load_neuron

    if not isinstance(neuron, MeasuredNeuron):
        if not isinstance(neuron, (str, Path)):
            raise TypeError("neuron must be a MeasuredNeuron or the path of its JSON file (noble-neuron measure), got "
                            f"{type(neuron).__name__}")
        neuron = load_neuron(neuron)
    neuron.for_surrogate(s)  # refused when measured for another checkpoint's features or grid
    return neuron.feature_vector(s.config.feature_names), neuron


def _network_cell_is_hybrid(network, model_id, features, checkpoint, drive) -> bool:
    """Whether ``SurrogateCell(..., network=network)`` builds a `HybridCell` (refusing a 'hybrid' it cannot build)."""
    from .hybrid_cell import has_shipped_load

    if network == "hybrid":
        if features is not None or checkpoint is not None or drive is not None or not isinstance(model_id, str):
            raise ValueError("network='hybrid' keeps a detailed model's own soma and axon: give that model's id "
                             "(e.g. 'hof_017'), without features or a checkpoint; a neuron given by features has no "
                             "detailed model (use network='streaming')")
        return True
    return (network is True and features is None and checkpoint is None and drive is None
            and has_shipped_load(model_id))


class SurrogateCell:
    """A surrogate neuron with a real ``soma`` Section (see module docstring).

    Parameters: ``model_id`` a model of the checkpoint's training dataset (e.g.
    ``"hof_017"``, training or unseen split), or ``features``: the raw values of the checkpoint's
    feature set (``surrogate.config.feature_names``), in that order or as a dict by name;
    neither → `default_model_id`. ``checkpoint`` a path, a loaded `Surrogate`, or None for
    the shipped one. ``network=True`` with the id of a family model whose detailed model ships returns a
    `HybridCell` (not a SurrogateCell: no ``features``, ``surrogate`` or ``inject_current``; ``name`` and ``strict``
    do not apply); ``network="streaming"`` keeps the streaming surrogate. ``fi_curve=(amplitudes_nA, rates_Hz)`` (or an `FICurve`): the neuron's measured FI curve (steps
    as long as the training steps): a neuron given by features then fires its count under a step within those
    amplitudes, in the pattern of the training models nearest in rheobase and FI (`surrogate.measured`).
    ``step_trains``: the spike trains of its recorded steps (`surrogate.measured.recorded_trains`), which it then
    fires as a training model fires its own, interpolated in amplitude. ``neuron``: a neuron measured on its
    sweeps (`recordings.measure.MeasuredNeuron` or its JSON file from ``noble-neuron measure``): its features,
    trains and, measured with voltage, its own backbone and action potential.
    ``strict=True`` raises instead of warning when the cell or its input
    is outside the training domain (features outside the convex hull of the training
    models, input amplitude outside the trained range).
    """

    def __new__(cls, model_id: str | None = None, *, features: Sequence[float] | Mapping[str, float] | None = None,
                checkpoint: str | Path | Surrogate | None = None, strict: bool = False, name: str | None = None,
                network: bool | str = False, fi_curve=None, step_trains=None, neuron=None, _drive=None):
        network = bool(network) if isinstance(network, np.bool_) else network
        if network not in NETWORK_CHOICES or isinstance(network, (int, float)) and not isinstance(network, bool):
            raise ValueError(f"network must be one of {NETWORK_CHOICES}, got {network!r}: True gives the most "
                             "faithful network cell there is for the neuron, 'streaming' the streaming surrogate")
        if (fi_curve is not None or step_trains is not None or neuron is not None) and network:
            raise ValueError("fi_curve, step_trains and neuron choose the spike trains a whole-trace surrogate fires; "
                             "network cells do not use them (leave network=False)")
        if _network_cell_is_hybrid(network, model_id, features, checkpoint, _drive):
            from .hybrid_cell import HybridCell

            return HybridCell(model_id)
        return super().__new__(cls)

    def __init__(self, model_id: str | None = None, *, features: Sequence[float] | Mapping[str, float] | None = None,
                 checkpoint: str | Path | Surrogate | None = None, strict: bool = False, name: str | None = None,
                 network: bool | str = False, fi_curve=None, step_trains=None, neuron=None, _drive=None):
        from neuron import h

        from ..detailed.mechanisms import load_mechanisms

        load_mechanisms()
        h.load_file("stdrun.hoc")  # finitialize/continuerun as users call them (idempotent)
        self.surrogate = resolve_surrogate(checkpoint, network)
        self.strict = bool(strict)
        s = self.surrogate
        if model_id is not None and features is not None:
            raise ValueError("pass model_id or features, not both")
        if neuron is not None:
            if model_id is not None or features is not None or fi_curve is not None or step_trains is not None:
                raise ValueError("a measured neuron carries its features and trains: pass neuron alone, without "
                                 "model_id, features, fi_curve or step_trains")
            features, neuron = _measured_neuron(neuron, s)
        if features is None:
            model_id = default_model_id(s) if model_id is None else str(model_id)
            self.features = s.features_of(model_id)
        else:
            self.features = s.feature_vector(features)
        self.model_id = model_id
        if fi_curve is not None and step_trains is not None:
            raise ValueError("pass fi_curve or step_trains, not both (recorded trains carry their FI curve)")
        if step_trains is not None and not isinstance(step_trains, StepTrains):
            raise TypeError("step_trains must be a StepTrains: build it from your recorded steps with "
                            "noble_neuron.surrogate.measured.recorded_trains(amps_nA, spike_times_ms, dur_ms)")
        self.measured = neuron.measured if neuron is not None else step_trains if step_trains is not None else \
            None if fi_curve is None else as_fi_curve(fi_curve)
        if self.measured is not None:
            _check_measured_applies(s, model_id if features is None else None)
        # own step trains (a training model's, a recording's) answer its steps; others blend neighbours' trains
        own = (model_id is not None and getattr(s.backbones.get(model_id), "trains", None) is not None  # own trains
               or isinstance(self.measured, StepTrains) or isinstance(self.measured, MeasuredCell))
        _warn_accuracy_once(s, own, measured=self.measured is not None)
        self._warned: set[str] = set()
        self._features_in_hull = bool(s.in_hull(self.features[None, :])[0])
        self._amplitude: float | None = None
        if not self._features_in_hull and not isinstance(self.measured, MeasuredCell):  # a measured cell is its own
            shown = dict(zip(s.config.feature_names, self.features.round(4).tolist()))
            self.report_domain("features", f"features {shown} are outside the convex hull of the training "
                                           "population's features (training models and reference neurons)")

        eng = engine()
        self.index = eng.register(self)
        self.name = name or f"SurrogateCell[{self.index}]"
        if _drive is None:
            self.soma = h.Section(name="soma", cell=self)  # NEURON names it f"{self}.soma"
            self.soma.L, self.soma.diam, self.soma.nseg = SOMA_L_UM, SOMA_DIAM_UM, 1
            self.drive = h.nn_VoltageDrive(self.soma(0.5))
        else:  # a drive made by someone else (a NetPyNE cell rule): its section is the soma
            self.soma, self.drive = _drive.get_segment().sec, _drive
        # whole-trace: the predicted trace; network mode: a short rolling buffer per epoch
        n_play = clamp_buffer_samples(s) if s.is_streaming else s.n_samples
        self._target = h.Vector(n_play + 1)
        self._target.fill(h.v_init)
        self._target.play(self.drive._ref_vc, eng.time_vector(s.dt_ms, n_play, s if s.is_streaming else None), 1)
        self._injected: list[tuple[np.ndarray, np.ndarray]] = []
        self._prediction: np.ndarray | None = None
        self._prediction_key: str | None = None
        self._input: np.ndarray | None = None

    # ---------------------------------------------------------------- construction helpers
    @classmethod
    def sample(cls, n: int, seed: int = 0, *, checkpoint: str | Path | Surrogate | None = None,
               strict: bool = False, network: bool = False, source: str | None = None) -> list["SurrogateCell"]:
        """n new neurons of the family. ``source="population"`` (the default where the checkpoint carries reference
        neurons): n distinct neurons of its acceptance-sampled population, each firing its own step trains;
        ``"hull"``: features drawn uniformly inside the convex hull of the training population's features, firing their
        neighbours' blended trains (smooths the stuttering-to-tonic jumps: benchmarks/results/sampled_neurons.json)."""
        n = positive_int("sample(n), the number of neurons,", n)
        s = resolve_surrogate(checkpoint, network)
        need = int(n) * BYTES_PER_SAMPLE_PER_CELL * s.n_samples
        free = _available_memory_bytes()
        if free is not None and need > free:
            raise SurrogateCellError(
                f"sample({n}): {n} cells need ~{need / 2**30:.1f} GiB once run "
                f"({BYTES_PER_SAMPLE_PER_CELL * s.n_samples / 2**20:.2f} MiB per cell for its {s.n_samples}-sample "
                f"prediction), and {free / 2**30:.1f} GiB are free; "
                "sample fewer (several processes or MPI ranks can each hold a share)")
        source = source or ("population" if s.references and not network else "hull")
        if source == "population":
            from ..surrogate.references import sample_references

            if network:
                raise ValueError("population neurons fire step trains (whole-trace); network cells: source='hull'")
            picked = [s.references[r] for r in sample_references(s.references, int(n), seed)]
            return [cls(features=r.features, step_trains=r.trains, checkpoint=s, strict=strict) for r in picked]
        if source != "hull":
            raise ValueError(f"sample(source={source!r}): 'population' (the checkpoint's reference neurons) or 'hull'")
        return [cls(features=f, checkpoint=s, strict=strict)
                for i, f in enumerate(s.sample_features(n, seed))]

    @classmethod
    def from_twins(cls, twins, checkpoint: str | Path | Surrogate | None = None, n: int | None = None,
                   strict: bool = False) -> list["SurrogateCell"]:
        """The first `n` (None: all) twins (`recordings.twins.Twins` or its JSON file), best first, each firing its
        own trains: training models as themselves, reference neurons by their features and trains."""
        from ..recordings.twins import Twins, load_twins

        n = None if n is None else positive_int("from_twins(n), the number of twins,", n)
        twins = twins if isinstance(twins, Twins) else load_twins(twins)
        s = resolve_surrogate(checkpoint)
        if unknown := [t for t in twins.ids if t not in s.references and t not in s.backbones]:
            raise ValueError(f"twins {unknown[:5]} are not neurons of this checkpoint; load the checkpoint the twins "
                             f"were found with ({twins.checkpoint or 'see the twins file'})")
        return [cls(t, checkpoint=s, strict=strict) if t in s.backbones else
                cls(features=s.references[t].features, step_trains=s.references[t].trains, checkpoint=s, strict=strict)
                for t in twins.ids[:n]]

    @classmethod
    def adopt(cls, drive, checkpoint: str | Path | Surrogate | None = None,
              features: Sequence[float] | None = None) -> "SurrogateCell":
        """Wrap an ``nn_VoltageDrive`` someone else placed (e.g. a NetPyNE cell rule) as a SurrogateCell.

        Its section becomes ``soma``; `checkpoint` a network checkpoint (None: the shipped one);
        `features` (None: the checkpoint's default neuron) come from the engine's registry, indexed by
        the drive's ``neuron``. Used by the engine at finitialize (`register_drive_adopter`).
        """
        return cls(features=features, checkpoint=checkpoint, network=True, _drive=drive,
                   name=f"SurrogateCell<{drive.get_segment().sec.name()}>")

    # ---------------------------------------------------------------- inputs
    def inject_current(self, values_nA: Sequence[float], *, dt_ms: float | None = None,
                       t_ms: Sequence[float] | None = None) -> None:
        """Add an arbitrary current waveform (nA) to this cell's input (in place of ``Vector.play`` into an IClamp).

        Give sample times either as a constant step ``dt_ms`` from t = 0 or explicitly as
        ``t_ms`` (increasing). Values are linearly interpolated onto the surrogate's grid
        and are 0 outside the given time span. Several waveforms and IClamps add up.
        """
        v = np.asarray(values_nA, dtype=float).ravel()
        if (dt_ms is None) == (t_ms is None):
            raise ValueError("give exactly one of dt_ms or t_ms")
        if t_ms is None:
            if not (is_real(dt_ms) and math.isfinite(float(dt_ms)) and dt_ms > 0):
                raise ValueError(f"dt_ms must be a number > 0, got {dt_ms!r}")
            t = np.arange(v.size) * float(dt_ms)
        else:
            t = np.asarray(t_ms, dtype=float).ravel()
        if t.shape != v.shape or v.size < 2:
            raise ValueError(f"need >= 2 samples with one time each; got {v.size} values and {t.size} times")
        if not (np.isfinite(v).all() and np.isfinite(t).all()):
            raise ValueError("injected current or its times contain NaN/inf")
        if np.any(np.diff(t) <= 0):
            raise ValueError("t_ms must be strictly increasing")
        self._injected.append((t, v))

    def clear_injected(self) -> None:
        """Remove all waveforms added by `inject_current`."""
        self._injected.clear()

    @property
    def injected_waveforms(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(times ms, currents nA) of each waveform added by `inject_current`, in order."""
        return list(self._injected)

    def point_processes(self) -> list:
        """Every point process on this cell's soma, at any location: soma(0) and soma(1) too (NEURON puts
        an IClamp placed there on the section's end node, which feeds the same soma)."""
        return [pp for seg in self.soma.allseg() for pp in seg.point_processes()]

    def iclamps(self) -> list:
        """IClamps on this cell's soma (any location)."""
        return [pp for pp in self.point_processes() if pp.hname().split("[")[0] == "IClamp"]

    def input_signature(self) -> tuple:
        """What this cell's input is made of now: each IClamp's (name, delay, dur, amp) and the injected
        waveforms (compared during a run to detect changes NEURON would act on but a prediction cannot)."""
        clamps = tuple((pp.hname(), float(pp.delay), float(pp.dur), float(pp.amp)) for pp in self.iclamps())
        return clamps, tuple(id(v) for _, v in self._injected)

    # ---------------------------------------------------------------- results
    @property
    def prediction_mV(self) -> np.ndarray | None:
        """The last predicted trace (mV, on the surrogate grid t = k·dt_ms), or None before finitialize.

        Network mode: the closed-loop voltage predicted so far in the current run."""
        if self.surrogate.is_streaming:
            group = engine().network_group_of(self)
            return None if group is None else group.closed_loop_traces()[group.index_of(self)]
        return None if self._prediction is None else self._prediction.copy()

    @property
    def prediction_key(self) -> str | None:
        """What the loaded whole-trace prediction was made for (a hash of input and features), or None."""
        return self._prediction_key

    @property
    def clamp_target(self):
        """The ``h.Vector`` (mV) played into the drive's target: the whole predicted trace (its last value
        held once more), or network mode's rolling epoch buffer on the engine's time base."""
        return self._target

    @property
    def input_nA(self) -> np.ndarray | None:
        """The input current (nA, surrogate grid) the last prediction was made for."""
        return None if self._input is None else self._input.copy()

    @property
    def domain(self) -> dict:
        """Whether this cell and its last input lie inside the training domain, and why not.

        ``features_in_hull``; ``amplitude_nA`` (characteristic amplitude of the last input,
        None before the first run) and ``amplitude_in_range``; ``waveform_is_step`` (only
        checked for checkpoints trained on steps alone, else None); ``inside`` = all hold.
        """
        amp_ok = None if self._amplitude is None else bool(self.surrogate.amplitude_in_range(np.array([self._amplitude]))[0])
        step_ok = None
        if self._input is not None and self.surrogate.steps_only:
            step_ok = is_single_step(self._input)
        return {"features_in_hull": self._features_in_hull, "amplitude_nA": self._amplitude,
                "amplitude_in_range": amp_ok, "waveform_is_step": step_ok,
                "inside": self._features_in_hull and amp_ok is not False and step_ok is not False}

    @property
    def dt_ms(self) -> float:
        return self.surrogate.dt_ms

    # ---------------------------------------------------------------- engine port (noble_neuron.neuron.port)
    def check_soma(self) -> None:
        """Raise SurrogateCellError if the soma has attached sections, inserted mechanisms or point processes
        the surrogate would silently ignore (synapses on a whole-trace cell among them)."""
        seg = self.soma(0.5)
        allowed = _ALLOWED_POINT_PROCESSES + (_NETWORK_SYNAPSES if self.surrogate.is_streaming else ())
        attached = [sec.name() for sec in self.soma.children()]
        if attached:
            raise SurrogateCellError(
                f"sections {attached[:3]} are connected to {self.soma.name()}: the surrogate imposes the somatic "
                "voltage and ignores whatever flows in from attached sections (its training cell already has its "
                "dendrites); disconnect them (h.disconnect(sec=...)) or simulate the detailed model")
        for pp in self.point_processes():
            kind = pp.hname().split("[")[0]
            if kind in _NETWORK_SYNAPSES and kind not in allowed:
                raise SurrogateCellError(
                    f"{pp.hname()} sits on {self.soma.name()}: synaptic input would be silently ignored by this "
                    "SurrogateCell's whole-trace checkpoint, which predicts from inputs known at finitialize. "
                    "Use network mode: SurrogateCell(..., network=True) (or another streaming checkpoint)."
                )
            if kind not in allowed or (kind == "nn_VoltageDrive" and pp.hname() != self.drive.hname()):
                raise SurrogateCellError(
                    f"{pp.hname()} sits on {self.soma.name()}: SurrogateCell takes input from IClamps, "
                    f"cell.inject_current and (network mode) {', '.join(_NETWORK_SYNAPSES)} only; anything else "
                    "would be silently ignored by the surrogate, so it is refused."
                )
        mechs = [m.name() for m in seg if not m.name().endswith("_ion")]  # ions alone are inert
        if mechs:
            raise SurrogateCellError(
                f"mechanisms {mechs} are inserted in {self.soma.name()}; the surrogate imposes the whole somatic "
                "voltage, so inserted channels would have no effect. Remove them (soma.uninsert(name))."
            )

    def clamp_settings(self) -> list[tuple[Any, float, float, float]]:
        """(IClamp, delay ms, dur ms, amp nA) of every IClamp on the soma, as they are now; a non-finite
        setting raises SurrogateCellError naming the clamp (the engines read clamps only through here)."""
        out = []
        for stim in self.iclamps():
            delay, dur, amp = float(stim.delay), float(stim.dur), float(stim.amp)
            if not all(math.isfinite(x) for x in (delay, dur, amp)):
                raise SurrogateCellError(f"{stim.hname()} on {self.soma.name()} has a non-finite delay/dur/amp")
            out.append((stim, delay, dur, amp))
        return out

    def render_input(self, grid_ms: np.ndarray) -> np.ndarray:
        """This cell's input current (nA) at times `grid_ms`: its IClamps plus the injected waveforms."""
        i = np.zeros_like(grid_ms)
        for _, delay, dur, amp in self.clamp_settings():
            i += step_current(grid_ms, delay, dur, amp)
        for t, v in self._injected:
            i += np.interp(grid_ms, t, v, left=0.0, right=0.0)
        return i

    def set_prediction(self, v_mV: np.ndarray, input_nA: np.ndarray, amplitude_nA: float, key: str) -> None:
        """Play the whole-trace prediction `v_mV` (mV), made for `input_nA` (characteristic amplitude
        `amplitude_nA`, identified by `key`), into the clamp target."""
        self._prediction, self._input, self._prediction_key = v_mV, input_nA, key
        self._amplitude = float(amplitude_nA)
        target = self._target.as_numpy()
        target[:-1] = v_mV
        target[-1] = v_mV[-1]

    def report_domain(self, kind: str, message: str) -> None:
        """Warn once per `kind` (DomainWarning) that this cell or its input is outside the training domain;
        raise SurrogateCellError instead in strict mode."""
        text = f"SurrogateCell {self.model_id or self.features.round(4).tolist()}: {message}"
        if self.strict:
            raise SurrogateCellError(text + " (strict mode)")
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(text + "; the surrogate extrapolates there", DomainWarning, stacklevel=3)

    def __repr__(self) -> str:
        who = self.model_id or dict(zip(self.surrogate.config.feature_names, self.features.round(4).tolist()))
        return f"<{self.name}: {who!r}>"

    def __str__(self) -> str:
        return self.name


register_drive_adopter(SurrogateCell.adopt)
