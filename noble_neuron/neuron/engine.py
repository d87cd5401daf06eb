"""The engine behind SurrogateCell: one batched FNO call per ``finitialize`` for all cells.

NEURON-facing edge of the package. At every ``h.finitialize`` three handlers run:

* type 3 (start): validate every live SurrogateCell soma (only IClamps and the cell's own
  ``nn_VoltageDrive`` may sit there) and put a NaN sentinel into each IClamp ``amp``;
* type 0 (plays applied): an ``amp`` that is no longer NaN is driven by ``Vector.play``,
  whose future values NEURON cannot tell us, so the run is refused with the fix
  (``cell.inject_current``); otherwise the user's ``amp`` is restored;
* type 1 (after INITIAL): render every cell's input current on the surrogate's grid
  (IClamp ``delay/dur/amp`` as read now, plus injected waveforms), call
  ``Surrogate.predict`` ONCE per checkpoint for all its cells, write the traces into the
  clamp target vectors, set ``soma.v`` to the t = 0 sample and schedule an event at the
  end of the trained window that stops a longer run with a clear error.

Predictions are cached per cell: a re-run with unchanged inputs costs no forward pass.
The clamp target is played continuously (linear interpolation between 0.06 ms samples),
shifted by −dt/2 under fixed step because NEURON evaluates BREAKPOINT and continuous plays
at t + dt/2 (NEURON_NOTES); unshifted under CVode. Cells of a streaming checkpoint run in
network mode instead (`noble_neuron.neuron.network`, one `NetworkGroup` per checkpoint).

The engine sees cells only through `noble_neuron.neuron.port.EngineCell`; it wraps
``nn_VoltageDrive``s placed by others (NetPyNE cell rules) with the adopter that
`noble_neuron.neuron.cell` registers (`register_drive_adopter`), so it never imports the cell.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import math
import warnings
import weakref
from typing import Any, Callable

import numpy as np

from ..surrogate.encoding import characteristic_amplitude
from ..errors import SurrogateCellError, CoarseStepWarning  # noqa: F401 (raised here, defined in errors)
from .port import EngineCell

__all__ = ["SurrogateCellError", "engine", "finitialize", "is_single_step", "register_drive_adopter"]

log = logging.getLogger(__name__)

#: wraps an nn_VoltageDrive placed by someone else as a network cell: ``adopt(drive, checkpoint, features)``
#: (checkpoint a Surrogate or None for the shipped network one, features raw or None); `register_drive_adopter`
_drive_adopter: Callable[[Any, Any, Any], EngineCell] | None = None


def register_drive_adopter(adopt: Callable[[Any, Any, Any], EngineCell]) -> None:
    """How the engine wraps foreign drives (NetPyNE cell rules) as cells; `noble_neuron.neuron.cell` registers
    ``SurrogateCell.adopt`` when it is imported."""
    global _drive_adopter
    _drive_adopter = adopt


#: during a run, whole-trace cells' inputs are compared with those their prediction was made for every this many ms
INPUT_CHECK_MS = 5.0


def _measured_bytes(measured: Any) -> bytes:
    """A cell's measured responses (FICurve, StepTrains, MeasuredCell or None) as bytes for its prediction's cache
    key."""
    if measured is None:
        return b""
    if hasattr(measured, "backbone"):  # a MeasuredCell: its backbone's tables, trains and action potential
        arrays = list(measured.backbone.to_arrays().values()) + [
            np.zeros(0) if measured.ap_template_mV is None else measured.ap_template_mV]
        return b"".join(np.asarray(a).tobytes() for a in arrays) + _measured_bytes(measured.backbone.trains)
    arrays = [getattr(measured, n) for n in ("amps_nA", "rates_Hz", "counts", "times_ms") if hasattr(measured, n)]
    return b"".join(np.asarray(a).tobytes() for a in arrays) + str(getattr(measured, "dur_ms", "")).encode()


class _Engine:
    """Process-wide singleton; holds weak references to cells so deleting a cell frees it."""

    def __init__(self) -> None:
        from neuron import h

        self._h = h
        self._cells: "weakref.WeakValueDictionary[int, EngineCell]" = weakref.WeakValueDictionary()
        self._next_id = 0
        self._sentinels: list[tuple[Any, float]] = []
        self._time_vectors: dict[tuple[float, int], Any] = {}
        self._limit_ms: float | None = None
        self._watched: dict[int, tuple] = {}  # whole-trace cells: input signature at the last finitialize
        self._coarse_warned: set[int] = set()
        self.predict_calls = 0  # forward passes requested (one per checkpoint per changed run)
        self.last_predict_s = 0.0
        self.network_groups: list = []  # network mode: one NetworkGroup per streaming checkpoint, this run
        self._adopted: dict[str, EngineCell] = {}  # wrappers of NetPyNE-made drives, owned here
        self.rule_checkpoints: list = []  # network checkpoints of NetPyNE cell rules; a drive's ckpt indexes it
        self.rule_neurons: list[list[float]] = []  # their neurons' features; a drive's neuron indexes it
        # Handlers must outlive every cell: they are kept for the life of the process.
        self.last_error: BaseException | None = None  # what the last finitialize refused (`finitialize` raises it)
        self._handlers = [h.FInitializeHandler(3, self._recorded(self._on_start)),
                          h.FInitializeHandler(0, self._recorded(self._on_plays_applied)),
                          h.FInitializeHandler(1, self._recorded(self._on_initialized))]

    def _check_globals(self, cells: list[EngineCell]) -> None:
        """NEURON settings a surrogate cannot follow: Crank–Nicolson (``secondorder``) makes its clamped soma ring
        (47 threshold crossings for 38 spikes on hof_017 at 0.3 nA): refused; a ``celsius`` other than its training
        temperature: a DomainWarning per cell (SurrogateCellError when strict)."""
        h = self._h
        if int(h.secondorder) != 0:
            raise SurrogateCellError(
                f"h.secondorder = {int(h.secondorder)} (Crank–Nicolson) makes a surrogate cell's clamped soma ring "
                "and its NetCons count extra spikes; set h.secondorder = 0 for runs with SurrogateCells")
        for cell in cells:
            trained = (getattr(cell.surrogate, "metrics", None) or {}).get("dataset", {}).get("celsius_degC")
            if trained is not None and abs(float(h.celsius) - trained) > 0.01:
                cell.report_domain("temperature", f"h.celsius = {float(h.celsius):g} °C, but the surrogate was "
                                                  f"trained at {trained:g} °C and cannot follow the temperature")

    def _recorded(self, handler):
        """`handler`, keeping a copy of what it raises in ``last_error`` (NEURON turns it into "Python Callback
        failed"); a copy, without the traceback, whose frames would keep the caller's cells alive."""
        def run() -> None:
            try:
                handler()
            except BaseException as exc:
                self.last_error = copy.copy(exc)
                raise
        return run

    # -------------------------------------------------------------- registry
    def register(self, cell: EngineCell) -> int:
        """Track `cell` (weakly); returns its process-unique index."""
        index = self._next_id
        self._cells[index] = cell
        self._next_id += 1
        return index

    def cells(self) -> list[EngineCell]:
        return [c for _, c in sorted(self._cells.items())]

    def time_vector(self, dt_ms: float, n: int, network_surrogate=None):
        """Shared clamp time base (n+1 samples) for surrogates of this dt/length; refilled at each init.

        Streaming (network-mode) surrogates get one per checkpoint, rewritten every epoch."""
        key = (dt_ms, n) if network_surrogate is None else ("network", id(network_surrogate), n)
        if key not in self._time_vectors:
            self._time_vectors[key] = self._h.Vector(np.arange(n + 1) * dt_ms)
        return self._time_vectors[key]

    # -------------------------------------------------------------- type 3
    def _on_start(self) -> None:
        self.last_error = None
        self._sentinels = []
        self._adopt_foreign_drives()
        cells = self.cells()
        for cell in cells:
            cell.check_soma()
        if cells:
            self._check_globals(cells)
        self._prepare_network_groups(cells)
        for cell in cells:
            for stim in cell.iclamps():
                self._sentinels.append((stim, float(stim.amp)))
                stim.amp = math.nan

    # -------------------------------------------------------------- type 0
    def _on_plays_applied(self) -> None:
        played = []
        for stim, amp in self._sentinels:
            if not math.isnan(stim.amp):
                played.append(stim)
            stim.amp = amp
        self._sentinels = []
        if played:
            raise SurrogateCellError(
                f"{len(played)} IClamp(s) on SurrogateCell somas have their amp driven by Vector.play "
                f"(e.g. {played[0].hname()}); the surrogate predicts the whole trace at finitialize and cannot see "
                "played values in advance. Remove the play and pass the waveform with "
                "cell.inject_current(values_nA, dt_ms=...) instead."
            )

    # -------------------------------------------------------------- type 1
    def _on_initialized(self) -> None:
        h = self._h
        cells = self.cells()
        if not cells:
            return
        groups: dict[int, list[EngineCell]] = {}
        for cell in cells:
            groups.setdefault(id(cell.surrogate), []).append(cell)
        fixed_step = not h.cvode.active()
        shift = -0.5 * h.dt if fixed_step else 0.0
        limits = []
        for net in self.network_groups:
            net.start()
            del groups[id(net.s)]
        for group in groups.values():
            self._predict_group(group)
            s = group[0].surrogate
            tvec = self.time_vector(s.dt_ms, s.n_samples).as_numpy()
            tvec[:] = np.arange(s.n_samples + 1) * s.dt_ms + shift
            limits.append((s.n_samples + 1) * s.dt_ms)  # last sample is held for one more step
            for cell in group:
                cell.soma(0.5).v = float(cell.prediction_mV[0])
        whole = [c for g in groups.values() for c in g]
        self._watched = {c.index: c.input_signature() for c in whole}
        if fixed_step and whole:
            self._warn_coarse_step(whole)
        if whole:
            h.cvode.event(h.t + INPUT_CHECK_MS, self._input_check_event)
        if limits:
            self._limit_ms = min(limits)
            # Fires only if the run goes past the trained window (first grid time >= limit under fixed step).
            h.cvode.event(self._limit_ms + 1e-6, self._window_end)

    def _input_check_event(self) -> None:
        self.check_inputs()
        if self._limit_ms is None or self._h.t + INPUT_CHECK_MS < self._limit_ms:
            self._h.cvode.event(self._h.t + INPUT_CHECK_MS, self._input_check_event)

    def check_inputs(self) -> None:
        """Raise SurrogateCellError if a whole-trace cell was created after finitialize or its input changed
        since (run every INPUT_CHECK_MS of model time during a run; callable at any time)."""
        h = self._h
        for cell in self.cells():
            if cell.surrogate.is_streaming:
                continue
            before = self._watched.get(cell.index)
            if before is None:
                raise SurrogateCellError(
                    f"{cell} was created after h.finitialize() (t = {h.t:g} ms): its soma is not driven by a "
                    "prediction. Create SurrogateCells before h.finitialize(), or call h.finitialize() again.")
            if cell.input_signature() != before:
                raise SurrogateCellError(
                    f"the input of {cell} changed during the run (noticed at t = {h.t:g} ms: an IClamp was added, "
                    "removed or its delay/dur/amp changed, or inject_current was called); a whole-trace surrogate "
                    "predicts from the inputs at h.finitialize(). Call h.finitialize() again after changing inputs, "
                    "or use network mode (SurrogateCell(..., network=True)) for inputs decided during the run.")

    def forget_netpyne_cells(self) -> None:
        """Drop the engine's wrappers of NetPyNE-made surrogate cells (call after NetPyNE's ``sim.clearAll()``;
        wrappers of deleted cells are otherwise dropped at the next finitialize)."""
        self._adopted.clear()

    def _warn_coarse_step(self, cells: list[EngineCell]) -> None:
        """Warn once per cell when h.dt is longer than the surrogate's narrowest action potential stays above the
        threshold of a NetCon watching its soma (a fixed step can then jump over a spike)."""
        h = self._h
        by_soma = {c.soma.name(): c for c in cells}
        for nc in h.List("NetCon"):
            seg = nc.preseg()
            cell = None if seg is None else by_soma.get(seg.sec.name())
            if cell is None or cell.index in self._coarse_warned:
                continue
            prediction = cell.prediction_mV
            if prediction is None:
                continue
            above = prediction >= float(nc.threshold)
            edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
            widths = (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) * cell.surrogate.dt_ms
            if widths.size and h.dt > widths.min():
                self._coarse_warned.add(cell.index)
                warnings.warn(
                    f"h.dt = {h.dt:g} ms is longer than {cell}'s narrowest predicted action potential stays above the "
                    f"threshold {float(nc.threshold):g} mV of a NetCon on its soma ({widths.min():.2f} ms): the fixed "
                    f"step can jump over spikes, so the NetCon may miss some of the {widths.size} the prediction holds. "
                    f"Use h.dt <= {widths.min() / 2:.3g} ms or CVode (h.cvode_active(1)).", CoarseStepWarning,
                    stacklevel=2)

    def register_rule_checkpoint(self, surrogate) -> int:
        """The index of `surrogate` in `rule_checkpoints` (added if new): what a NetPyNE rule's drive carries."""
        for i, known in enumerate(self.rule_checkpoints):
            if known is surrogate:
                return i
        self.rule_checkpoints.append(surrogate)
        return len(self.rule_checkpoints) - 1

    def register_rule_neuron(self, features: list[float]) -> int:
        """The index of a neuron's `features` in `rule_neurons` (added if new): what a NetPyNE rule's drive carries."""
        if features in self.rule_neurons:
            return self.rule_neurons.index(features)
        self.rule_neurons.append(list(features))
        return len(self.rule_neurons) - 1

    def _adopt_foreign_drives(self) -> None:
        """Wrap nn_VoltageDrives not made by a SurrogateCell (NetPyNE cell rules) as network-mode cells.

        The engine owns these wrappers (nobody else does); a wrapper whose drive lost its
        section (cells cleared) is dropped.
        """
        if not hasattr(self._h, "nn_VoltageDrive"):  # mechanisms never loaded here (e.g. an MPI rank without surrogates)
            return
        self._adopted = {k: c for k, c in self._adopted.items() if c.drive.has_loc()}
        owned = {c.drive.hname() for c in self.cells()}
        foreign = [d for d in self._h.List("nn_VoltageDrive") if d.hname() not in owned and d.has_loc()]
        if not foreign:
            return
        if _drive_adopter is None:
            raise SurrogateCellError(f"{foreign[0].hname()} was placed without noble_neuron.neuron.cell being imported: "
                                     "build its cell rule with noble_neuron.integrations.netpyne.cell_rule")
        for drive in foreign:
            key = int(round(drive.ckpt))
            if key >= len(self.rule_checkpoints):
                raise SurrogateCellError(f"{drive.hname()} asks for network checkpoint #{key}, but this process "
                                         f"registered {len(self.rule_checkpoints)}: build its cell rule with "
                                         "noble_neuron.integrations.netpyne.cell_rule in this process")
            surrogate = self.rule_checkpoints[key] if key >= 0 else None  # None: the shipped network checkpoint
            n = int(round(drive.neuron))
            if n >= len(self.rule_neurons):
                raise SurrogateCellError(f"{drive.hname()} asks for neuron #{n}, but this process registered "
                                         f"{len(self.rule_neurons)}: build its cell rule in this process")
            features = self.rule_neurons[n] if n >= 0 else None
            self._adopted[drive.hname()] = _drive_adopter(drive, surrogate, features)

    def _prepare_network_groups(self, cells: list[EngineCell]) -> None:
        """Type 3: one NetworkGroup per streaming checkpoint; its clamp time base is valid before plays start."""
        from .network import NetworkGroup, clamp_buffer_samples

        self.network_groups = []
        groups: dict[int, list[EngineCell]] = {}
        for cell in cells:
            if cell.surrogate.is_streaming:
                groups.setdefault(id(cell.surrogate), []).append(cell)
        for group in groups.values():
            self.network_groups.append(NetworkGroup(group, self._h))
        self._agree_across_ranks()
        for net in self.network_groups:
            s = net.s
            net.bind_time_vector(self.time_vector(s.dt_ms, clamp_buffer_samples(s), s).as_numpy())

    def _agree_across_ranks(self) -> None:
        """Under MPI: one epoch for all ranks, and spike exchange at every epoch boundary.

        A spike from another rank reaches this rank's event queue only at an exchange; with
        exchanges every epoch (``ParallelContext.set_maxstep``), boundaries on them and epochs
        shorter than half the smallest delay, every event due in an epoch is queued at its
        start, as on one rank. Collective: the engine
        must exist on every rank (``noble_neuron.neuron.engine.engine()`` or a NetPyNE cell rule).
        """
        h = self._h
        pc = h.ParallelContext()
        if pc.nhost() <= 1:
            return
        # Each group's epoch is already below half its smallest delay (the epoch callback at an exchange
        # time runs before that exchange, so the last interval's remote spikes are not queued yet).
        local = min((-1.0 if g.lead_ms > 0 else g.epoch_ms for g in self.network_groups), default=float("inf"))
        agreed = pc.allreduce(local, 3)
        if agreed < 0:
            raise SurrogateCellError("network mode under MPI needs epochs on the NEURON step grid: choose h.dt so "
                                     "that a multiple of it is a multiple of 0.06 ms (e.g. 0.025, 0.02, 0.01 ms) or "
                                     "use CVode")
        if math.isinf(agreed):
            return
        for g in self.network_groups:
            g.use_epoch_samples(int(round(agreed / g.dt_sample_ms)))
        pc.set_maxstep(agreed)

    def network_group_of(self, cell: EngineCell):
        """The NetworkGroup running `cell` in this run, or None."""
        for g in self.network_groups:
            if g.index_of(cell) is not None:
                return g
        return None

    def _predict_group(self, group: list[EngineCell]) -> None:
        import time

        s = group[0].surrogate
        grid = np.arange(s.n_samples) * s.dt_ms
        stimuli = np.stack([cell.render_input(grid) for cell in group])
        measured = [getattr(cell, "measured", None) for cell in group]
        keys = [hashlib.sha1(stim.tobytes() + cell.features.tobytes() + _measured_bytes(m)).hexdigest()
                for cell, stim, m in zip(group, stimuli, measured)]
        todo = [i for i, (cell, key) in enumerate(zip(group, keys)) if cell.prediction_key != key]
        if not todo:
            return
        amps = characteristic_amplitude(_torch_tensor(stimuli[todo])).numpy()
        in_range = s.amplitude_in_range(amps)
        for i, ok, amp in zip(todo, in_range, amps):
            own = s.model_features.get(group[i].model_id or "", {}).get("amp_range_nA")
            if not ok:
                lo, hi = s.amp_range_nA
                group[i].report_domain(
                    "amplitude", f"input amplitude {amp:.4g} nA is outside the trained range [{lo:g}, {hi:g}] nA")
            elif own is not None and not own[0] - 0.05 * (own[1] - own[0]) <= amp <= own[1] + 0.05 * (own[1] - own[0]):
                group[i].report_domain(
                    "amplitude", f"input amplitude {amp:.4g} nA is outside the amplitudes model {group[i].model_id} "
                                 f"was trained on [{own[0]:.3g}, {own[1]:.3g}] nA (a rheobase-relative plan ends at "
                                 "its top amplitude); widen the plan (high_x_rheobase) and retrain to use it there")
        if s.steps_only:
            for i in todo:
                if not is_single_step(stimuli[i]):
                    group[i].report_domain(
                        "waveform", "its input is not a single current step, and this checkpoint was trained on "
                                    "Long Square steps only")
        features = np.stack([group[i].features for i in todo])
        start = time.perf_counter()
        given = [measured[i] for i in todo] if any(measured[i] is not None for i in todo) else None
        v = s.predict(stimuli[todo], features, s.dt_ms, check_domain=False, measured=given)
        self.last_predict_s = time.perf_counter() - start
        self.predict_calls += 1
        for row, i in enumerate(todo):
            group[i].set_prediction(v[row], stimuli[i], float(amps[row]), keys[i])

    # -------------------------------------------------------------- window end
    def _window_end(self) -> None:
        if not any(not c.surrogate.is_streaming for c in self.cells()):
            return
        raise SurrogateCellError(
            f"the run went past t = {self._limit_ms:.6g} ms, the end of the surrogate's trained window; "
            "SurrogateCell predicts whole traces of the trained length and does not tile longer runs "
            f"(the cell state at a window edge is unknown). Run to at most {self._limit_ms:.6g} ms."
        )


def _torch_tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def is_single_step(current_nA: np.ndarray, tol_nA: float = 1e-9) -> bool:
    """True if the current is zero except for one contiguous stretch at a constant amplitude (or all zero)."""
    from ..surrogate.step_trains import single_step

    current = np.asarray(current_nA)
    return not (np.abs(current) > tol_nA).any() or single_step(current, 1.0, tol_nA) is not None


_ENGINE: _Engine | None = None


def engine() -> _Engine:
    """The process-wide engine (created with the first SurrogateCell)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def finitialize(v_mV: float | None = None) -> None:
    """``h.finitialize(v_mV)`` that raises what a surrogate cell refused there (a `SurrogateCellError`, a ValueError
    naming the input) instead of NEURON's "Python Callback failed" RuntimeError, so a script can catch it; the
    same run as ``h.finitialize`` otherwise."""
    from neuron import h

    eng = engine()
    eng.last_error = None
    try:
        h.finitialize() if v_mV is None else h.finitialize(v_mV)
    except RuntimeError:
        refused, eng.last_error = eng.last_error, None
        if refused is not None:
            raise refused from None
        raise
