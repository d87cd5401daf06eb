"""Network mode: sliding-window surrogates advanced in epochs, closed loop, inside NEURON.

NEURON-facing edge of the package, used by `noble_neuron.neuron.engine` for SurrogateCells
whose checkpoint is a sliding-window surrogate (``Surrogate.is_sliding``).

Epochs. The run is cut into epochs of D = n_e · dt_sample_ms (dt_sample_ms = 0.06 ms, the surrogate grid),
with D shorter than half the smallest NetCon delay into any surrogate synapse (and at most
the trained horizon); under fixed step D is a whole number of NEURON steps when the grids
allow (multiples of 0.3 ms at dt 0.025). A spike that arrives in [t_k, t_k + D] was then
emitted before t_k − D, so at
the epoch boundary t_k every input of the epoch is known: IClamps (delay/dur/amp) and the
synaptic events waiting in NEURON's queue (``CVode.event_queue_info``). At each boundary
the engine builds, for ALL surrogate cells of a checkpoint at once, the window of input
current and of known voltage that ends at t_k + D, calls ``Surrogate.predict`` once, and
writes the n_e new voltage samples into each cell's clamp target; a ``CVode.event`` chain
(started in the type-1 FInitializeHandler) fires the next boundary. Spikes leave through
ordinary NetCons watching the clamped soma voltage.

Synapses. ExpSyn and Exp2Syn on a surrogate soma are integrated by NEURON as usual (their
state is read at each boundary), but their current is fed to the surrogate, not to the
clamped soma: i_syn(t) = −g(t)·(v(t) − e), with g(t) over the epoch computed exactly from
the state at t_k and the pending events (exponential kernels), and v(t) the surrogate's own
voltage. v over the epoch is not known before the prediction: the first pass holds v at
v(t_k); ``iterations`` > 1 repeats the epoch with the previous pass's voltage (a fixed-point
iteration, one batched call each). At 0.6 ms epochs 1, 2 and 3 passes gave the same
subthreshold error to < 0.01 mV (benchmarks/network.py --iterations), so the default is 1.
The surrogate was trained on current inputs; conductance input enters only through this
driving force.

Outputs. Input-only checkpoints see the current window alone; ``voltage_history`` ones also
their own earlier output (closed loop). Spike-head checkpoints (the shipped one) return the
clipped voltage and a spike probability; a `SpikeComposer` per group turns them, epoch after
epoch, into voltages with action potentials (`noble_neuron.surrogate.spike_head`).
"""
from __future__ import annotations

import logging
import math
import time
import warnings
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..stimuli.protocols import step_current
from ..surrogate.encoding import characteristic_amplitude
from ..surrogate.model import AccuracyWarning
from ..errors import NetworkError  # noqa: F401 (raised here, defined in errors)

_CAVEATS_SHOWN: set[int] = set()  # one AccuracyWarning per checkpoint per process

if TYPE_CHECKING:  # pragma: no cover
    from .cell import SurrogateCell

__all__ = ["NetworkError", "NetworkGroup", "PLAY_MARGIN_SAMPLES", "SUPPORTED_SYNAPSES", "aligned_samples",
           "choose_epoch", "epoch_samples"]

log = logging.getLogger(__name__)

SUPPORTED_SYNAPSES = ("ExpSyn", "Exp2Syn")
#: predictions outside this range (mV) are clipped and reported (see NetworkGroup._guard_voltage)
VOLTAGE_RANGE_MV = (-110.0, 70.0)
#: clamp buffer = horizon + this many samples (history before t_k for steps up to ~0.4 ms, plus a held value)
PLAY_MARGIN_SAMPLES = 10


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
    """All sliding-surrogate cells of one checkpoint during one run (created at finitialize)."""

    def __init__(self, cells: list["SurrogateCell"], h: Any, iterations: int = 1) -> None:
        # weak: a group outlives its run (for inspection) but must not keep deleted cells alive
        self._cell_refs = [weakref.ref(c) for c in cells]
        self.n_cells = len(cells)
        self._targets = [c._target for c in cells]  # the Vectors are kept so their numpy views stay valid
        self._target_views = [c._target_view for c in cells]
        self.h = h
        self.s = cells[0].surrogate
        self.dt_sample_ms = self.s.dt_ms
        self.window = self.s.n_samples
        self.iterations = int(iterations)
        self.predict_calls = 0
        self.predict_s = 0.0  # wall time in Surrogate.predict
        self.engine_s = 0.0  # wall time in the epoch callbacks outside predict (inputs, synapses, buffers)
        self._collect_synapses(cells)
        self.min_delay_ms = self._min_delay()
        # Epochs shorter than HALF the smallest delay: then the same epochs are also correct under MPI,
        # where a remote spike reaches the queue only at the next exchange (cell_engine), and results do
        # not depend on the number of ranks.
        try:
            self.n_e, self.lead_ms = choose_epoch(None if self.min_delay_ms is None else 0.5 * self.min_delay_ms,
                                                  self.dt_sample_ms, self.s.sliding_horizon_samples,
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
                          "the detailed model; see docs/network_mode.md.", AccuracyWarning, stacklevel=2)

    @property
    def cells(self) -> list["SurrogateCell"]:
        """The cells of this group that are still alive (in group order)."""
        return [c for c in (r() for r in self._cell_refs) if c is not None]

    def index_of(self, cell: "SurrogateCell") -> int | None:
        for i, r in enumerate(self._cell_refs):
            if r() is cell:
                return i
        return None

    # ------------------------------------------------------------------ setup
    def _collect_synapses(self, cells: list["SurrogateCell"]) -> None:
        self.syns, cell_of, kinds, e, tau1, tau2, factor = [], [], [], [], [], [], []
        self._syn_index: dict[str, int] = {}
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

    def _min_delay(self) -> float | None:
        if not self.syns:
            return None
        delays = [float(nc.delay) for nc in self.h.List("NetCon")
                  if nc.syn() is not None and nc.syn().hname() in self._syn_index]
        return min(delays) if delays else None

    def _collect_clamps(self, cells: list["SurrogateCell"]) -> None:
        rows, window_ms = [], self.window * self.dt_sample_ms
        for i, cell in enumerate(cells):
            for stim, d, dur, amp in cell.clamp_settings():
                rows.append((i, d, dur, amp))
                if amp != 0.0 and dur > window_ms and not (self.s.config.voltage_history or self.s.config.streaming):
                    cell._domain_problem("held_step", f"{stim.hname()} holds {amp:g} nA for {dur:g} ms, longer than "
                                         f"the {window_ms:g} ms input window: under a constant current an input-only "
                                         "network surrogate loses the phase of tonic firing and stops firing "
                                         "(docs/network_mode.md); for step protocols use SurrogateCell without "
                                         "network=True")
        arr = np.array(rows, dtype=float).reshape(-1, 4)
        self.clamp_cell = arr[:, 0].astype(np.int64)
        self.clamp_delay, self.clamp_dur, self.clamp_amp = arr[:, 1:2], arr[:, 2:3], arr[:, 3:4]
        self.injected = [(i, list(c._injected)) for i, c in enumerate(cells) if c._injected]

    # ------------------------------------------------------------------ run
    def start(self) -> None:
        """At finitialize (type 1): fill the history with rest and predict the first epoch."""
        n, w = self.n_cells, self.window
        v0 = np.array([c.soma(0.5).v for c in self.cells])
        if v0.size != n:
            raise NetworkError("a SurrogateCell was deleted during finitialize")
        self.i_hist = np.zeros((n, w), dtype=np.float32)
        self.v_hist = np.repeat(v0[:, None], w, axis=1).astype(np.float32)
        self.t_k = 0.0
        self.trace = [v0[:, None].astype(np.float32)]
        self.g_trace = [np.zeros((n, 1), dtype=np.float32)]
        self.composer = self.s.spike_composer(n) if self.s.config.spike_head else None
        self._advance()

    def on_boundary(self) -> None:
        """CVode event at t_k (one step before it when lead_ms > 0): predict (t_k, t_k + D], schedule the next."""
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
        self.i_hist = np.roll(self.i_hist, -n_e, axis=1)
        self.v_hist = np.roll(self.v_hist, -n_e, axis=1)
        v_guess = np.repeat(self.v_hist[:, -n_e - 1:-n_e], n_e, axis=1)  # v held at v(t_k)
        for _ in range(max(1, self.iterations) if self.syns else 1):
            self.i_hist[:, -n_e:] = i_ext - (g * v_guess - ge)  # i_syn = -g (v - e), nA
            start = time.perf_counter()
            out = self.s.predict(self.i_hist, self.features, self.dt_sample_ms, n_future=n_e, check_domain=False,
                                 voltage_history_mV=self.v_hist if self.s.config.voltage_history else None,
                                 spike_parts=self.composer is not None)
            self.predict_s += time.perf_counter() - start
            self.predict_calls += 1
            v_guess = out[0][:, -n_e:] if self.composer is not None else out[:, -n_e:]
        if self.composer is not None:  # spike head: clipped voltage + action potentials where it fires
            v_guess = self.composer.step(v_guess, out[1][:, -n_e:])
        v_guess = self._guard_voltage(v_guess)
        self.v_hist[:, -n_e:] = v_guess
        self._check_amplitudes()
        self.trace.append(v_guess.copy())
        self.g_trace.append(g.astype(np.float32))
        self._write_targets()
        if h.cvode.active() and self.t_k > 0:
            # CVode may have stepped past t_k on the old (held) target before this event and interpolated
            # back; restart it from t_k so the new samples are integrated (0.3 mV error without, 0.06 with)
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
                cell._domain_problem("voltage", f"at t = {self.t_k:.2f} ms its closed-loop prediction left "
                                     f"[{lo:g}, {hi:g}] mV ({v[i].min():.1f} … {v[i].max():.1f} mV) and was clipped; "
                                     "its network-mode output is unreliable there")
        return np.clip(v, lo, hi) if bad.size else v

    def _check_amplitudes(self) -> None:
        """Domain guard: a window's characteristic amplitude outside the trained range warns once per cell
        (raises for strict cells)."""
        amp = characteristic_amplitude(torch.from_numpy(self.i_hist)).numpy().astype(np.float64)
        self._report_amplitudes(amp, f"over the last {self.window * self.dt_sample_ms:g} ms")

    def _report_amplitudes(self, amp_nA: np.ndarray, over: str) -> None:
        """Warn once per cell (raise for strict cells) whose input amplitude `amp_nA` (nA, averaged `over`)
        lies outside the trained range: the one domain report of both network engines."""
        bad = np.flatnonzero(~self.s.amplitude_in_range(amp_nA))
        lo, hi = self.s.amp_range_nA
        for i in bad:
            cell = self._cell_refs[i]()
            if cell is not None:
                cell._domain_problem("amplitude", f"at t = {self.t_k:.2f} ms its input {over} averages "
                                     f"{amp_nA[i]:.4g} nA, outside the trained range [{lo:g}, {hi:g}] nA")

    def _clamp_current(self, tau: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n_cells, tau.size))
        if self.clamp_cell.size:  # one row per IClamp, the same on-window rule as whole-trace cells
            np.add.at(out, self.clamp_cell, step_current(tau[None, :], self.clamp_delay, self.clamp_dur, self.clamp_amp))
        for i, waves in self.injected:
            for t, v in waves:
                out[i] += np.interp(tau, t, v, left=0.0, right=0.0)
        return out

    def _conductances(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per cell, total synaptic conductance g (uS) and sum of g·e over the epoch samples."""
        n = self.n_cells
        if not self.syns:
            return np.zeros((n, tau.size)), np.zeros((n, tau.size))
        # state at t_k: ExpSyn g, Exp2Syn (A, B); g = B - A
        a = np.array([float(s.A) if two else 0.0 for s, two in zip(self.syns, self.syn_two)])
        b = np.array([float(s.B) if two else float(s.g) for s, two in zip(self.syns, self.syn_two)])
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
        idx, times, weights = [], [], []
        for t_e, nc in zip(tvec, ncs):
            if t_e > t_end + 1e-9:
                continue
            target = nc.syn()
            k = None if target is None else self._syn_index.get(target.hname())
            if k is not None:
                idx.append(k), times.append(t_e), weights.append(nc.weight[0])
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
        """Adopt a (shorter) epoch agreed with other MPI ranks."""
        if not 1 <= n_e <= self.n_e:
            raise NetworkError(f"cannot lengthen the epoch from {self.n_e} to {n_e} samples")
        self.n_e, self.epoch_ms = int(n_e), n_e * self.dt_sample_ms

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
