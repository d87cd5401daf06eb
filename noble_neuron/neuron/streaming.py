"""Network mode with a streaming surrogate: state carried from epoch to epoch, cost O(new samples).

NEURON-facing edge for SurrogateCells whose checkpoint is a streaming model
(``SurrogateConfig.streaming``, `noble_neuron.surrogate.streaming`). Everything around the model is the
sliding-window engine's (`noble_neuron.neuron.network.NetworkGroup`): epochs shorter than half
the smallest NetCon delay into the group (so every input of an epoch is known at its start,
on any number of MPI ranks), IClamp currents, exact ExpSyn/Exp2Syn conductances from NEURON's
event queue with the driving force from the surrogate's own voltage, clamp targets and the
CVode event chain. What differs: an epoch is a whole number of model steps (0.3 ms), and
instead of re-predicting a 61 ms window the group advances one `StreamingRunner` for all its
cells by the epoch's steps (one batched recurrence step per model step; the cells' own spikes
feed back). `finitialize` starts every cell from a zero state at its initial voltage. Each
cell's spike draws are keyed on its soma's name (NetPyNE: the gid), so runs repeat exactly and
agree across MPI rank counts.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .network import PLAY_MARGIN_SAMPLES, NetworkError, NetworkGroup

if TYPE_CHECKING:  # pragma: no cover
    from .cell import SurrogateCell

__all__ = ["StreamingGroup"]

#: time constant (ms) of the running mean of each cell's input compared with the trained amplitude range
AMPLITUDE_WINDOW_MS = 50.0


class StreamingGroup(NetworkGroup):
    """All streaming-surrogate cells of one checkpoint during one run (created at finitialize)."""

    def __init__(self, cells: list["SurrogateCell"], h: Any, iterations: int = 1) -> None:
        super().__init__(cells, h, iterations=1)  # the driving force uses the voltage at the epoch start
        self.factor = self.s.config.time_coarsening
        self._round_epoch(self.n_e)

    def _round_epoch(self, n_e: int) -> None:
        n = n_e - n_e % self.factor
        if n < self.factor:
            step = self.factor * self.dt_sample_ms
            raise NetworkError(
                f"an epoch of {n_e * self.dt_sample_ms:g} ms is shorter than one streaming-model step ({step:g} ms): "
                f"epochs must stay below half the smallest NetCon delay into a surrogate cell "
                f"({self.min_delay_ms if self.min_delay_ms is not None else float('nan'):g} ms here), so that delay "
                f"must exceed {2 * (step + self.lead_ms):g} ms. Use a longer delay or the detailed model.")
        self.n_e, self.epoch_ms = n, n * self.dt_sample_ms

    def use_epoch_samples(self, n_e: int) -> None:
        """Adopt a (shorter) epoch agreed with other MPI ranks (rounded down to whole model steps)."""
        if not 1 <= n_e <= self.n_e:
            raise NetworkError(f"cannot lengthen the epoch from {self.n_e} to {n_e} samples")
        self._round_epoch(int(n_e))

    def start(self) -> None:
        """At finitialize (type 1): zero state, the cells' initial voltage, and the first epoch."""
        from ..surrogate.streaming import StreamingRunner, cell_key

        v0 = np.array([c.soma(0.5).v for c in self.cells])
        if v0.size != self.n_cells:
            raise NetworkError("a SurrogateCell was deleted during finitialize")
        keys = [cell_key(c.soma.name()) for c in self.cells]
        self.runner = StreamingRunner(self.s, self.features, v0, keys)
        width = self.s.sliding_horizon_samples + PLAY_MARGIN_SAMPLES + 1
        self.v_hist = np.repeat(v0[:, None], width, axis=1).astype(np.float32)
        self.i_mean, self.weight = np.zeros(self.n_cells), 0.0
        self.t_k = 0.0
        self.trace = [v0[:, None].astype(np.float32)]
        self.g_trace = [np.zeros((self.n_cells, 1), dtype=np.float32)]
        self._advance()

    def _advance_epoch(self) -> None:
        h, n_e = self.h, self.n_e
        tau = self.t_k + self.dt_sample_ms * np.arange(1, n_e + 1)
        i_ext = self._clamp_current(tau)
        g, ge = self._conductances(tau)
        v_now = self.v_hist[:, -1:].astype(np.float64)  # driving force from the voltage at t_k
        current = i_ext - (g * v_now - ge)
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
            h.cvode.re_init()
        h.cvode.event(self.t_k + self.epoch_ms - self.lead_ms, self.on_boundary)

    def _check_amplitudes(self, current: np.ndarray | None = None) -> None:
        """Domain guard: a cell whose input, averaged over the last ~50 ms, leaves the trained amplitude
        range warns once (raises for strict cells)."""
        if current is None:
            return
        decay = math.exp(-self.epoch_ms / AMPLITUDE_WINDOW_MS)
        self.i_mean = decay * self.i_mean + (1.0 - decay) * current.mean(axis=1)
        self.weight = decay * self.weight + (1.0 - decay)  # bias correction: the mean since t = 0 early on
        self._report_amplitudes(self.i_mean / self.weight, f"over the last ~{AMPLITUDE_WINDOW_MS:g} ms")

    def spike_times_ms(self) -> list[np.ndarray]:
        """Each cell's spike times (ms) as the model fired them this run."""
        return self.runner.spike_times_ms()
