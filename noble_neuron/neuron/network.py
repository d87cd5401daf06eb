"""Network mode: streaming surrogates advanced in epochs, closed loop, inside NEURON.

NEURON-facing edge of the package, used by `noble_neuron.neuron.engine` for SurrogateCells
whose checkpoint is a streaming model (``Surrogate.is_streaming``,
`noble_neuron.surrogate.streaming`): a recurrence whose state is carried from epoch to epoch,
so an epoch costs its new samples only.

Epochs. The run is cut into epochs of D = n_e · dt_sample_ms (dt_sample_ms = 0.06 ms, the
surrogate grid), a whole number of model steps (0.3 ms) and at most `MAX_EPOCH_STEPS` of them
(the clamp buffer), with D shorter than half the smallest NetCon delay into any surrogate
synapse; under fixed step D is a whole number of NEURON steps when the grids allow (multiples
of 0.3 ms at dt 0.025). A spike that arrives in [t_k, t_k + D] was then emitted before
t_k − D, so at the epoch boundary t_k every input of the epoch is known, on any number of MPI
ranks: IClamps (delay/dur/amp) and the synaptic events waiting in NEURON's queue
(``CVode.event_queue_info``). At each boundary the engine advances one `StreamingRunner` for
ALL surrogate cells of a checkpoint by the epoch's steps (one batched recurrence step per
model step; the cells' own spikes feed back) and writes the n_e new voltage samples into each
cell's clamp target; a ``CVode.event`` chain (started in the type-1 FInitializeHandler) fires
the next boundary. Spikes leave through ordinary NetCons watching the clamped soma voltage.
`finitialize` starts every cell from a zero state at its initial voltage. Each cell's spike
draws are keyed on its soma's name (NetPyNE: the gid), so runs repeat exactly and agree across
MPI rank counts.

Synapses. ExpSyn and Exp2Syn on a surrogate soma are integrated by NEURON as usual (their
state is read at each boundary), but their current is fed to the surrogate, not to the
clamped soma: i_syn(t) = −g(t)·(v − e), with g(t) over the epoch computed exactly from
the state at t_k and the pending events (exponential kernels), and v the surrogate's own
voltage at t_k. The surrogate was trained on current inputs; conductance input enters only
through this driving force.

Domain guard: a cell whose input, averaged over the last ~50 ms (`AMPLITUDE_WINDOW_MS`),
leaves the trained amplitude range warns once (raises for strict cells); voltages outside
`VOLTAGE_RANGE_MV` are clipped and reported.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
import weakref
from typing import Any

import numpy as np

from ..stimuli.protocols import step_current
from ..surrogate.model import AccuracyWarning
from ..errors import NetworkError  # noqa: F401 (raised here, defined in errors)
from .port import EngineCell

_CAVEATS_SHOWN: set[int] = set()  # one AccuracyWarning per checkpoint per process

__all__ = ["MAX_EPOCH_STEPS", "NetworkError", "NetworkGroup", "PLAY_MARGIN_SAMPLES", "SUPPORTED_SYNAPSES",
           "aligned_samples", "choose_epoch", "clamp_buffer_samples", "epoch_samples"]

log = logging.getLogger(__name__)

SUPPORTED_SYNAPSES = ("ExpSyn", "Exp2Syn")
#: predictions outside this range (mV) are clipped and reported (see NetworkGroup._guard_voltage)
VOLTAGE_RANGE_MV = (-110.0, 70.0)
#: the longest epoch, in model steps (10 × 0.3 ms)
MAX_EPOCH_STEPS = 10
#: clamp buffer = longest epoch + this many samples (history before t_k for steps up to ~0.4 ms, plus a held value)
PLAY_MARGIN_SAMPLES = 10
#: time constant (ms) of the running mean of each cell's input compared with the trained amplitude range
AMPLITUDE_WINDOW_MS = 50.0


def clamp_buffer_samples(surrogate) -> int:
    """Samples of a network cell's clamp buffer (its target Vector holds one more, the held value): the
    longest epoch (`MAX_EPOCH_STEPS` model steps of `surrogate`) plus `PLAY_MARGIN_SAMPLES`."""
    return MAX_EPOCH_STEPS * surrogate.config.time_coarsening + PLAY_MARGIN_SAMPLES


def epoch_samples(min_delay_ms: float | None, dt_sample_ms: float, horizon: int, margin_ms: float = 0.0) -> int:
    """Samples per epoch: the most n_e <= horizon with n_e·dt_sample_ms + margin_ms strictly below the smallest delay."""
    if min_delay_ms is None:
        return horizon
    n = int(math.ceil((min_delay_ms - margin_ms) / dt_sample_ms - 1e-9)) - 1
    if n < 2:
        raise NetworkError(f"an epoch budget of {min_delay_ms:g} ms holds fewer than 2 surrogate samples; it must "
                           f"exceed {2 * dt_sample_ms + margin_ms:g} ms (2 samples of {dt_sample_ms:g} ms + {margin_ms:g} ms of lead)")
    return min(n, horizon)


def aligned_samples(dt_sample_ms: float, h_dt: float, most: int = 64) -> int | None:
    """Smallest k such that k surrogate samples are a whole number of NEURON steps (None if k > most)."""
    for k in range(1, most + 1):
        r = k * dt_sample_ms / h_dt
        if abs(r - round(r)) < 1e-6:
            return k
    return None


def choose_epoch(min_delay_ms: float | None, dt_sample_ms: float, horizon: int, h_dt: float | None) -> tuple[int, float]:
    """(samples per epoch, callback lead in ms).

    CVode (``h_dt`` None) fires the boundary event exactly at its time: no lead. Under fixed
    step an event fires at the first step boundary at or after its time, so epochs are made a
    whole number of NEURON steps when the two grids allow (0.06 and 0.025 ms: multiples of
    0.3 ms) and then need no lead either; otherwise the callback is scheduled one step early
    (lead = dt), which the smallest delay must also cover.
    """
    if h_dt is None:
        return epoch_samples(min_delay_ms, dt_sample_ms, horizon), 0.0
    n = epoch_samples(min_delay_ms, dt_sample_ms, horizon)
    k = aligned_samples(dt_sample_ms, h_dt)
    if k is not None and n >= k:
        return n - n % k, 0.0
    return epoch_samples(min_delay_ms, dt_sample_ms, horizon, h_dt), float(h_dt)


def _exp2_factor(tau1: float, tau2: float) -> float:
    """Exp2Syn's peak normalisation (as in NEURON's exp2syn.mod)."""
    if tau1 / tau2 > 0.9999:
        tau1 = 0.9999 * tau2
    tp = (tau1 * tau2) / (tau2 - tau1) * math.log(tau2 / tau1)
    return 1.0 / (-math.exp(-tp / tau1) + math.exp(-tp / tau2))


class NetworkGroup:
    """All network-mode (streaming) cells of one checkpoint during one run (created at finitialize)."""

    def __init__(self, cells: list[EngineCell], h: Any) -> None:
        # weak: a group outlives its run (for inspection) but must not keep deleted cells alive
        self._cell_refs = [weakref.ref(c) for c in cells]
        self.n_cells = len(cells)
        self._targets = [c.clamp_target for c in cells]  # the Vectors are kept so their numpy views stay valid
        self._target_views = [target.as_numpy() for target in self._targets]
        self.h = h
        self.s = cells[0].surrogate
        self.dt_sample_ms = self.s.dt_ms
        self.factor = self.s.config.time_coarsening  # data samples per model step
        self.predict_calls = 0  # StreamingRunner.advance calls (one batched call per epoch)
        self.predict_s = 0.0  # wall time in the model (StreamingRunner.advance)
        self.engine_s = 0.0  # wall time in the epoch callbacks outside the model (inputs, synapses, buffers)
        self._collect_synapses(cells)
        self.min_delay_ms = self._min_delay()
        # Epochs shorter than HALF the smallest delay: then the same epochs are also correct under MPI,
        # where a remote spike reaches the queue only at the next exchange (cell_engine), and results do
        # not depend on the number of ranks.
        try:
            self.n_e, self.lead_ms = choose_epoch(None if self.min_delay_ms is None else 0.5 * self.min_delay_ms,
                                                  self.dt_sample_ms, MAX_EPOCH_STEPS * self.factor,
                                                  None if h.cvode.active() else float(h.dt))
        except NetworkError as exc:
            raise NetworkError(
                f"a NetCon into a surrogate cell has delay {self.min_delay_ms:g} ms; epochs must stay below half "
                f"the smallest delay so that an epoch's inputs are known at its start on any number of MPI ranks, "
                f"and {exc}. Use a longer delay (cortical connections are >= 0.5 ms) or the detailed model."
            ) from None
        self.n_back = int(math.ceil(self.lead_ms / self.dt_sample_ms)) + 2
        if self.n_back + 1 > PLAY_MARGIN_SAMPLES:
            raise NetworkError(f"h.dt = {h.dt:g} ms is too coarse for network mode (at most "
                               f"{(PLAY_MARGIN_SAMPLES - 3) * self.dt_sample_ms:g} ms); use a smaller dt or CVode")
        self.epoch_ms = self.n_e * self.dt_sample_ms
        self._collect_clamps(cells)
        self.features = np.stack([c.features for c in cells])
        caveat = self.s.closed_loop_caveat()
        if caveat is not None and id(self.s) not in _CAVEATS_SHOWN:
            _CAVEATS_SHOWN.add(id(self.s))
            warnings.warn(f"network-mode checkpoint: {caveat}. Its spikes and rates are not yet a substitute for "
                          "the detailed model; where the detailed model is at hand, HybridCell(model_id) keeps its "
                          "spike timing (noble_neuron.neuron.hybrid_cell; docs/network_mode.md).", AccuracyWarning,
                          stacklevel=2)
        self._round_epoch(self.n_e)

    def _round_epoch(self, n_e: int) -> None:
        """Epochs of whole model steps: `n_e` samples rounded down (at least one step, else NetworkError)."""
        n = n_e - n_e % self.factor
        if n < self.factor:
            step = self.factor * self.dt_sample_ms
            raise NetworkError(
                f"an epoch of {n_e * self.dt_sample_ms:g} ms is shorter than one streaming-model step ({step:g} ms): "
                f"epochs must stay below half the smallest NetCon delay into a surrogate cell "
                f"({self.min_delay_ms if self.min_delay_ms is not None else float('nan'):g} ms here), so that delay "
                f"must exceed {2 * (step + self.lead_ms):g} ms. Use a longer delay or the detailed model.")
        self.n_e, self.epoch_ms = n, n * self.dt_sample_ms

    @property
    def cells(self) -> list[EngineCell]:
        """The cells of this group that are still alive (in group order)."""
        return [c for c in (r() for r in self._cell_refs) if c is not None]

    def index_of(self, cell: EngineCell) -> int | None:
        for i, r in enumerate(self._cell_refs):
            if r() is cell:
                return i
        return None

    # ------------------------------------------------------------------ setup
    def _collect_synapses(self, cells: list[EngineCell]) -> None:
        self.syns, cell_of, kinds, e, tau1, tau2, factor = [], [], [], [], [], [], []
        self._syn_index: dict[str, int] = {}
        self._nc_syn: dict[int, int | None] = {}  # NetCon address → synapse index (see _synapse_of)
        for i, cell in enumerate(cells):
            for pp in cell.point_processes():
                kind = pp.hname().split("[")[0]
                if kind not in SUPPORTED_SYNAPSES:
                    continue
                self._syn_index[pp.hname()] = len(self.syns)
                self.syns.append(pp)
                cell_of.append(i)
                kinds.append(kind == "Exp2Syn")
                e.append(float(pp.e))
                if kind == "ExpSyn":
                    tau1.append(float(pp.tau)), tau2.append(float(pp.tau)), factor.append(1.0)
                else:
                    t1, t2 = float(pp.tau1), float(pp.tau2)
                    tau1.append(min(t1, 0.9999 * t2)), tau2.append(t2), factor.append(_exp2_factor(t1, t2))
        self.syn_cell = np.array(cell_of, dtype=np.int64)
        self.syn_two = np.array(kinds, dtype=bool)
        self.syn_e = np.array(e)
        self.syn_tau1, self.syn_tau2, self.syn_factor = np.array(tau1), np.array(tau2), np.array(factor)

    def _synapse_of(self, nc) -> int | None:
        """Index of the surrogate synapse NetCon `nc` targets, or None; cached for this run by the NetCon's
        address (not the object: a cache must not keep a NetCon the user deletes alive), so an epoch's queued
        events are sorted without looking up each one's target again."""
        ptr = nc.hocobjptr()
        k = self._nc_syn.get(ptr, -1)
        if k == -1:
            target = nc.syn()
            k = None if target is None else self._syn_index.get(target.hname())
            self._nc_syn[ptr] = k
        return k

    def _min_delay(self) -> float | None:
        if not self.syns:
            return None
        delays = [float(nc.delay) for nc in self.h.List("NetCon") if self._synapse_of(nc) is not None]
        return min(delays) if delays else None

    def _collect_clamps(self, cells: list[EngineCell]) -> None:
        rows = [(i, d, dur, amp) for i, cell in enumerate(cells) for _, d, dur, amp in cell.clamp_settings()]
        arr = np.array(rows, dtype=float).reshape(-1, 4)
        self.clamp_cell = arr[:, 0].astype(np.int64)
        self.clamp_delay, self.clamp_dur, self.clamp_amp = arr[:, 1:2], arr[:, 2:3], arr[:, 3:4]
        self.injected = [(i, list(c.injected_waveforms)) for i, c in enumerate(cells) if c.injected_waveforms]

    # ------------------------------------------------------------------ run
    def start(self) -> None:
        """At finitialize (type 1): zero state, the cells' initial voltage, and the first epoch."""
        from ..surrogate.streaming import StreamingRunner, cell_key

        v0 = np.array([c.soma(0.5).v for c in self.cells])
        if v0.size != self.n_cells:
            raise NetworkError("a SurrogateCell was deleted during finitialize")
        keys = [cell_key(c.soma.name()) for c in self.cells]
        self.runner = StreamingRunner(self.s, self.features, v0, keys)
        self._bind_synapse_states()
        self.v_hist = np.repeat(v0[:, None], clamp_buffer_samples(self.s) + 1, axis=1).astype(np.float32)
        self.i_mean, self.weight = np.zeros(self.n_cells), 0.0
        self.t_k = 0.0
        self.trace = [v0[:, None].astype(np.float32)]
        self.g_trace = [np.zeros((self.n_cells, 1), dtype=np.float32)]
        self._advance()

    def on_boundary(self) -> None:
        """CVode event at t_k (one step before it when lead_ms > 0): advance (t_k, t_k + D], schedule the next."""
        self.t_k += self.epoch_ms
        self._advance()

    def _advance(self) -> None:
        t0, p0 = time.perf_counter(), self.predict_s
        self._advance_epoch()
        self.engine_s += time.perf_counter() - t0 - (self.predict_s - p0)

    def _advance_epoch(self) -> None:
        h, n_e = self.h, self.n_e
        tau = self.t_k + self.dt_sample_ms * np.arange(1, n_e + 1)  # the epoch's new samples (t_k, t_k + D]
        i_ext = self._clamp_current(tau)
        g, ge = self._conductances(tau)
        v_now = self.v_hist[:, -1:].astype(np.float64)  # driving force from the voltage at t_k
        current = i_ext - (g * v_now - ge)  # i_syn = -g (v - e), nA
        start = time.perf_counter()
        v = self.runner.advance(current)
        self.predict_s += time.perf_counter() - start
        self.predict_calls += 1
        v = self._guard_voltage(v.astype(np.float32))
        self.v_hist = np.roll(self.v_hist, -n_e, axis=1)
        self.v_hist[:, -n_e:] = v
        self._check_amplitudes(current)
        self.trace.append(v.copy())
        self.g_trace.append(g.astype(np.float32))
        self._write_targets()
        if h.cvode.active() and self.t_k > 0:
            # CVode may have stepped past t_k on the old (held) target before this event and interpolated
            # back; restart it from t_k so the new samples are integrated
            h.cvode.re_init()
        # lead_ms > 0 only when epochs cannot sit on the fixed-step grid: fire one step early
        h.cvode.event(self.t_k + self.epoch_ms - self.lead_ms, self.on_boundary)

    def _guard_voltage(self, v: np.ndarray) -> np.ndarray:
        """Keep a drifting closed loop inside the physiological range: clip to VOLTAGE_RANGE_MV and
        say so (once per cell; strict cells raise), instead of feeding NEURON an absurd voltage."""
        lo, hi = VOLTAGE_RANGE_MV
        bad = np.flatnonzero((v.min(axis=1) < lo) | (v.max(axis=1) > hi))
        for i in bad:
            cell = self._cell_refs[i]()
            if cell is not None:
                cell.report_domain("voltage", f"at t = {self.t_k:.2f} ms its closed-loop prediction left "
                                   f"[{lo:g}, {hi:g}] mV ({v[i].min():.1f} … {v[i].max():.1f} mV) and was clipped; "
                                   "its network-mode output is unreliable there")
        return np.clip(v, lo, hi) if bad.size else v

    def _check_amplitudes(self, current: np.ndarray) -> None:
        """Domain guard: a cell whose input (nA), averaged over the last ~`AMPLITUDE_WINDOW_MS`, leaves the
        trained amplitude range warns once (raises for strict cells)."""
        decay = math.exp(-self.epoch_ms / AMPLITUDE_WINDOW_MS)
        self.i_mean = decay * self.i_mean + (1.0 - decay) * current.mean(axis=1)
        self.weight = decay * self.weight + (1.0 - decay)  # bias correction: the mean since t = 0 early on
        amp_nA = self.i_mean / self.weight
        bad = np.flatnonzero(~self.s.amplitude_in_range(amp_nA))
        lo, hi = self.s.amp_range_nA
        for i in bad:
            cell = self._cell_refs[i]()
            if cell is not None:
                cell.report_domain("amplitude", f"at t = {self.t_k:.2f} ms its input over the last "
                                   f"~{AMPLITUDE_WINDOW_MS:g} ms averages {amp_nA[i]:.4g} nA, outside the trained "
                                   f"range [{lo:g}, {hi:g}] nA")

    def _clamp_current(self, tau: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n_cells, tau.size))
        if self.clamp_cell.size:  # one row per IClamp, the same on-window rule as whole-trace cells
            np.add.at(out, self.clamp_cell, step_current(tau[None, :], self.clamp_delay, self.clamp_dur, self.clamp_amp))
        for i, waves in self.injected:
            for t, v in waves:
                out[i] += np.interp(tau, t, v, left=0.0, right=0.0)
        return out

    def _bind_synapse_states(self) -> None:
        """Pointers to every synapse's state (ExpSyn g, Exp2Syn B; Exp2Syn A), bound at each run's start and read
        each epoch in one call each (`PtrVector.gather`) instead of hoc attribute reads per synapse."""
        two = np.flatnonzero(self.syn_two)
        self._ptr_b, self._ptr_a = self.h.PtrVector(max(len(self.syns), 1)), self.h.PtrVector(max(two.size, 1))
        for k, (syn, is_two) in enumerate(zip(self.syns, self.syn_two)):
            self._ptr_b.pset(k, syn._ref_B if is_two else syn._ref_g)
        for j, k in enumerate(two):
            self._ptr_a.pset(j, self.syns[k]._ref_A)
        self._vec_b, self._vec_a = self.h.Vector(max(len(self.syns), 1)), self.h.Vector(max(two.size, 1))
        self._two_idx = two

    def _synapse_states(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) of every synapse now (A = 0 and B = g for ExpSyn)."""
        n = len(self.syns)
        self._ptr_b.gather(self._vec_b)
        b = self._vec_b.as_numpy()[:n].copy()
        a = np.zeros(n)
        if self._two_idx.size:
            self._ptr_a.gather(self._vec_a)
            a[self._two_idx] = self._vec_a.as_numpy()[:self._two_idx.size]
        return a, b

    def _conductances(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per cell, total synaptic conductance g (uS) and sum of g·e over the epoch samples."""
        n = self.n_cells
        if not self.syns:
            return np.zeros((n, tau.size)), np.zeros((n, tau.size))
        # state at t_k: ExpSyn g, Exp2Syn (A, B); g = B - A
        a, b = self._synapse_states()
        dt = tau[None, :] - self.h.t  # the state was read now (at or one step before t_k)
        b_t = b[:, None] * np.exp(-dt / self.syn_tau2[:, None])
        a_t = a[:, None] * np.exp(-dt / self.syn_tau1[:, None])
        for idx, t_e, w in self._pending_events(tau[-1]):
            lag = tau[None, :] - t_e[:, None]
            hit = lag >= -1e-9
            wf = (w * self.syn_factor[idx])[:, None]
            np.add.at(b_t, idx, np.where(hit, wf * np.exp(-np.maximum(lag, 0) / self.syn_tau2[idx, None]), 0.0))
            two = self.syn_two[idx]
            if two.any():
                np.add.at(a_t, idx[two], np.where(hit[two], wf[two] * np.exp(
                    -np.maximum(lag[two], 0) / self.syn_tau1[idx[two], None]), 0.0))
        g_syn = b_t - a_t
        g = np.zeros((n, tau.size))
        ge = np.zeros((n, tau.size))
        np.add.at(g, self.syn_cell, g_syn)
        np.add.at(ge, self.syn_cell, g_syn * self.syn_e[:, None])
        return g, ge

    def _pending_events(self, t_end: float):
        """(synapse indices, delivery times ms, weights) of queued NetCon events into our synapses up to t_end.

        Events due before the first new sample (between the callback and t_k) are included:
        their effect on the new samples is the same exponential kernel."""
        tvec, ncs = self.h.Vector(), self.h.List()
        self.h.cvode.event_queue_info(2, tvec, ncs)
        due = tvec.as_numpy()
        idx, times, weights = [], [], []
        for j in np.flatnonzero(due <= t_end + 1e-9):  # only the events due in this epoch leave hoc
            nc = ncs.o(int(j))
            k = self._synapse_of(nc)
            if k is not None:
                idx.append(k), times.append(due[j]), weights.append(nc.weight[0])
        if idx:
            yield np.array(idx, dtype=np.int64), np.array(times), np.array(weights)

    def _write_targets(self) -> None:
        """Clamp targets: samples t_k − n_back·dt_sample_ms … t_k + D, then the last value held (shared time base)."""
        nb, n_e = self.n_back, self.n_e
        self._set_time_base()
        known = self.v_hist[:, -n_e - nb - 1:]  # v(t_k − n_back·dt_sample_ms) … v(t_k + D)
        for i, buf in enumerate(self._target_views):
            buf[:nb + 1 + n_e] = known[i]
            buf[nb + 1 + n_e:] = known[i, -1]

    def use_epoch_samples(self, n_e: int) -> None:
        """Adopt a (shorter) epoch agreed with other MPI ranks (rounded down to whole model steps)."""
        if not 1 <= n_e <= self.n_e:
            raise NetworkError(f"cannot lengthen the epoch from {self.n_e} to {n_e} samples")
        self._round_epoch(int(n_e))

    def bind_time_vector(self, tvec_view: np.ndarray) -> None:
        """Use this clamp time base and set it for the first epoch now (before NEURON starts the plays)."""
        self.tvec_view = tvec_view
        self.t_k = 0.0
        self._set_time_base()

    def _set_time_base(self) -> None:
        shift = -0.5 * self.h.dt if not self.h.cvode.active() else 0.0
        self.tvec_view[:] = self.t_k + self.dt_sample_ms * (np.arange(self.tvec_view.size) - self.n_back) + shift

    def conductance_trace(self) -> np.ndarray:
        """(cells, samples) total synaptic conductance (uS) the engine used, on the grid t = k·dt_sample_ms."""
        return np.concatenate(self.g_trace, axis=1)

    def closed_loop_traces(self) -> np.ndarray:
        """(cells, samples) the voltages predicted so far on the grid t = k·dt_sample_ms (mV)."""
        return np.concatenate(self.trace, axis=1)

    def spike_times_ms(self) -> list[np.ndarray]:
        """Each cell's spike times (ms) as the model fired them this run."""
        return self.runner.spike_times_ms()
