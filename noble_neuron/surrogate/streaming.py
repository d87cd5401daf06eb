"""Streaming surrogate for network mode: a causal spectral network run as a recurrence.

Why. The sliding-window FNO this model replaced (since removed) recomputed a 61 ms window every
epoch to keep 0.6 ms of it (~100x more work than the new samples; slower than the detailed
cells it stood in for), and an input-only window holds no phase reference under a constant
current. A streaming model carries a state from epoch to epoch, costs O(new samples), and gets
its own emitted spikes back as an input, so refractoriness, adaptation and tonic firing follow
from what it did.

The network (`CausalSpectralNet`, ``SurrogateConfig.streaming``) is an FNO whose spectral
kernels are causal: each layer filters every channel with a bank of ``state_modes`` stable
complex exponentials (a diagonal linear recurrence x_k = λ x_{k-1} + u_k, |λ| < 1,
y_k = Re(c · x_k) + d u_k), followed by a pointwise GELU and channel mixing, as FNO layers
are. Training runs it as an FFT convolution over whole 2 s traces (like an FNO); the engine
runs the identical recurrence one step at a time (`StreamingRunner`), so cost per epoch is
proportional to its new steps and independent of history length.

Grid and channels. One step is ``time_coarsening`` data samples (0.3 ms at 5 x 0.06 ms).
Step k covers the data samples k·f+1 … (k+1)·f (times (k·f·dt, (k+1)·f·dt]); its inputs are
the mean current over the step (nA / ``current_scale_nA``), the cell's own spike in the
previous step (0/1: teacher-forced with the detailed cell's spikes in training, the model's
own in a run) and the scaled features; its outputs the voltage at the step's end clipped at
``v_clip_mV`` (the subthreshold/AHP trajectory) and the logit of "a spike's upstroke crosses
−20 mV during this step". `StreamingRunner` turns these into a voltage on the data grid: the
clipped voltage interpolated linearly, and where the model fires the model's own action potential
(`Surrogate.templates_for`) pasted with its crossing at the step's centre
(`noble_neuron.surrogate.decoder.StreamComposer`).

Firing is a draw from the model's spike hazard: each step a cell fires with probability
sigmoid(logit − ``Surrogate.spike_logit_shift``) (the shift, log of training's positive-class
weight, undoes that weighting; hazards below `HAZARD_FLOOR` count as 0), never within the
training data's shortest interspike interval. The draws are a fixed function of (cell key, step) (`hashed_uniform`), so a run is
reproducible and the same on any number of MPI ranks. Measured against the threshold rule
(fire where the probability reaches 0.5) in NEURON, 20 PV cells under synaptic drive
(benchmarks/network.py): 7.5 vs 0.17 Hz where the detailed cells fire 8.5 Hz: where spikes
are triggered by input fluctuations the hazard stays low and a threshold never fires.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
import torch
from torch import nn

from .spectral import fast_fft_length
from ..features.spikes import upward_crossings

__all__ = ["CausalSpectralLayer", "CausalSpectralNet", "StreamingRunner", "cell_key", "coarse_inputs",
           "coarse_targets", "hashed_uniform", "step_threads", "streaming_in_channels", "threads_available"]

#: spike hazards (per 0.3 ms step) below this are 0: at rest the model's hazard is small but not nil
#: (without the floor: 12 spikes in 60 cell-seconds at rest, where the detailed cells fire none; with it: 0)
HAZARD_FLOOR = 0.002
#: below this many cells a streaming step runs on one torch thread: its ops are small (cells × 32 channels ×
#: 16 modes) and handing each to a second thread costs more than it saves (see `step_threads`)
ONE_THREAD_BELOW_CELLS = 64
#: environment variables through which a user sets torch's thread count (torch reads them at start-up)
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: MPI launchers' counts of the ranks on this node (Open MPI, MPICH/Hydra, PMI, MVAPICH, Slurm), first found wins
LOCAL_RANKS_ENV_VARS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE",
                        "SLURM_NTASKS_PER_NODE")
#: a runner re-reads the machine's load at most this often (s of wall time): a job that starts mid-run is seen
THREADS_RECHECK_S = 1.0
#: torch's thread count when this module was imported: another count later means torch.set_num_threads was called
_TORCH_THREADS_AT_IMPORT = torch.get_num_threads()
#: the shortest and longest memory (in model steps) of the initial recurrent modes
TAU_RANGE_STEPS = (1.0, 3000.0)
#: the highest initial oscillation frequency of a mode (radians per step: 0.8 rad per 0.3 ms ≈ 420 Hz)
MAX_OMEGA = 0.8


def streaming_in_channels(n_features: int) -> int:
    """Input channels per step: current, own spike in the previous step, scaled features."""
    return 2 + int(n_features)


class CausalSpectralLayer(nn.Module):
    """Per channel, ``modes`` complex exponential kernels: y = causal conv(u, K) + d·u.

    K_j = Re(Σ_n c_n γ_n λ_n^j), λ_n = exp(−1/τ_n + iω_n) (|λ| < 1 for any τ > 0), γ_n =
    sqrt(1 − |λ_n|²) (keeps each mode's output variance independent of its memory).
    ``forward`` convolves whole sequences by FFT; ``step`` advances the recurrence by one step.
    """

    def __init__(self, channels: int, modes: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        lo, hi = (math.log(t) for t in TAU_RANGE_STEPS)
        u = torch.rand(channels, modes, generator=generator)
        self.log_tau = nn.Parameter(lo + (hi - lo) * u)
        self.omega = nn.Parameter(MAX_OMEGA * torch.rand(channels, modes, generator=generator) ** 2)
        scale = 1.0 / math.sqrt(modes)
        self.c_re = nn.Parameter(scale * torch.randn(channels, modes, generator=generator))
        self.c_im = nn.Parameter(scale * torch.randn(channels, modes, generator=generator))
        self.d = nn.Parameter(torch.zeros(channels))

    def _poles(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(log λ, c·γ) complex (C, N)."""
        decay = torch.exp(-self.log_tau)  # 1/τ per step
        log_lam = torch.complex(-decay, self.omega)
        gamma = torch.sqrt(-torch.expm1(-2.0 * decay))
        return log_lam, torch.complex(self.c_re, self.c_im) * gamma

    def kernel(self, length: int) -> torch.Tensor:
        """(C, length) real causal kernel."""
        log_lam, cg = self._poles()
        j = torch.arange(length, dtype=torch.float32, device=log_lam.device)
        powers = torch.exp(log_lam[..., None] * j)  # (C, N, L)
        return torch.einsum("cn,cnl->cl", cg, powers).real

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """(B, C, L) → (B, C, L), causal."""
        length = u.shape[-1]
        n = fast_fft_length(2 * length)
        k_f = torch.fft.rfft(self.kernel(length), n=n)
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * k_f, n=n)[..., :length]
        return y + self.d[:, None] * u

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, *self.c_re.shape, dtype=torch.complex64, device=self.c_re.device)

    def step_poles(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(λ, c·γ) complex (C, N) for `step` (computed once per run, not every step)."""
        log_lam, cg = self._poles()
        return torch.exp(log_lam), cg

    def step(self, u: torch.Tensor, state: torch.Tensor,
             poles: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: u (B, C), state (B, C, N) complex → (y (B, C), new state)."""
        lam, cg = self.step_poles() if poles is None else poles
        if torch.is_grad_enabled():
            state = lam * state + u[..., None]
        else:  # a run: update the caller's state in place (no temporaries; the runner owns it)
            state = state.mul_(lam).add_(u[..., None])
        return (cg * state).sum(-1).real + self.d * u, state


class CausalSpectralNet(nn.Module):
    """Lifting → ``n_layers`` × [LayerNorm → causal spectral layer → GELU → channel mixing, residual] →
    projection to 2 outputs (clipped voltage, spike logit). Channels-last inputs (B, L, C_in)."""

    def __init__(self, in_channels: int, hidden_channels: int, n_layers: int, state_modes: int,
                 projection_channels: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        self.lift = nn.Linear(in_channels, hidden_channels)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_channels) for _ in range(n_layers))
        self.spectral = nn.ModuleList(CausalSpectralLayer(hidden_channels, state_modes, g) for _ in range(n_layers))
        self.mix = nn.ModuleList(nn.Linear(hidden_channels, hidden_channels) for _ in range(n_layers))
        self.head = nn.Sequential(nn.LayerNorm(hidden_channels), nn.Linear(hidden_channels, projection_channels),
                                  nn.GELU(), nn.Linear(projection_channels, 2))
        with torch.no_grad():
            self.head[-1].bias.copy_(torch.tensor([0.0, -4.0]))  # spikes are rare: start at p ≈ 0.02

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C_in) → (B, L, 2) over whole sequences (FFT convolutions)."""
        h = self.lift(x)
        for norm, spec, mix in zip(self.norms, self.spectral, self.mix):
            y = spec(norm(h).transpose(1, 2)).transpose(1, 2)
            h = h + mix(nn.functional.gelu(y))
        return self.head(h)

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return [s.initial_state(batch) for s in self.spectral]

    def step_poles(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [s.step_poles() for s in self.spectral]

    def step(self, x: torch.Tensor, state: list[torch.Tensor],
             poles: list | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One step: x (B, C_in) → (outputs (B, 2), new state); the same function as `forward`.
        ``poles``: `step_poles()` of the current weights, to skip recomputing them every step."""
        h = self.lift(x)
        new = []
        poles = self.step_poles() if poles is None else poles
        for norm, spec, mix, s, p in zip(self.norms, self.spectral, self.mix, state, poles):
            y, s = spec.step(norm(h), s, p)
            new.append(s)
            h = h + mix(nn.functional.gelu(y))
        return self.head(h), new


# ---------------------------------------------------------------------------- data grid ↔ model grid
def coarse_inputs(stim_nA: np.ndarray, factor: int) -> np.ndarray:
    """(B, T) current on the data grid (sample 0 at t = 0) → (B, (T − 1) // factor) mean per model step."""
    x = np.asarray(stim_nA, dtype=np.float64)
    n = (x.shape[1] - 1) // factor
    return x[:, 1:1 + n * factor].reshape(len(x), n, factor).mean(axis=2)


def coarse_targets(v_mV: np.ndarray, factor: int, v_clip_mV: float) -> tuple[np.ndarray, np.ndarray]:
    """(clipped voltage at each step's end (B, n) mV, spike in the step (B, n) 0/1) of data-grid traces:
    step k holds data samples k·factor+1 … (k+1)·factor, a spike is `upward_crossings` at one of them."""
    v = np.asarray(v_mV, dtype=np.float64)
    n = (v.shape[1] - 1) // factor
    ends = v[:, factor:(n + 1) * factor:factor][:, :n]
    rows, cols = upward_crossings(v)
    keep = cols <= n * factor
    up = np.zeros((len(v), n), dtype=bool)
    up[rows[keep], (cols[keep] - 1) // factor] = True
    return np.minimum(ends, v_clip_mV), up.astype(np.float32)


def hashed_uniform(keys: np.ndarray, step: int) -> np.ndarray:
    """(B,) uniform draws in [0, 1), a fixed function of (each cell's key, step) (splitmix64): the same
    whatever the batch a cell is in, the MPI rank it runs on, or how often the run is repeated."""
    with np.errstate(over="ignore"):
        z = keys * np.uint64(0x9E3779B97F4A7C15) + np.uint64(step) * np.uint64(0xD1B54A32D192ED03)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _user_chose_threads() -> bool:
    return (any(os.environ.get(k, "").strip() for k in THREAD_ENV_VARS)
            or torch.get_num_threads() != _TORCH_THREADS_AT_IMPORT)


def _local_ranks() -> int:
    for k in LOCAL_RANKS_ENV_VARS:
        digits = os.environ.get(k, "").strip().split("(")[0]  # Slurm may write "2(x3)"
        if digits.isdigit() and int(digits) > 0:
            return int(digits)
    return 1


def _running_elsewhere() -> int:
    """Threads of other processes running or waiting for a core right now (Linux: /proc/loadavg less this
    process's own running threads; 0 where unknown)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    own += f.read().rpartition(")")[2].split()[0] == "R"
            except OSError:  # the thread ended meanwhile
                pass
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - max(own, 1))


def threads_available() -> int:
    """Cores this process may use without oversubscribing: its CPU affinity (``os.sched_getaffinity``,
    else ``os.cpu_count``) divided among the MPI ranks on this node (`LOCAL_RANKS_ENV_VARS`), and no
    more than the machine's cores that other processes' threads leave idle right now; at least 1."""
    total = os.cpu_count() or 1
    try:
        mine = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        mine = total
    return max(1, min(mine // _local_ranks(), total - _running_elsewhere()))


def step_threads(n_cells: int) -> int:
    """torch threads for a batched streaming step of `n_cells` cells.

    Below `ONE_THREAD_BELOW_CELLS` cells one thread (faster: the ops are small). From there on the
    user's own count where the user chose one (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, or
    ``torch.set_num_threads`` after noble_neuron was imported), never more; otherwise torch's count
    capped at `threads_available`. Why: torch's threads wait for each other by spinning, so one thread
    too many for the idle cores turns a step into scheduler time slices (100 cells, 50 ms, 2 cores with
    one busy process: 1.62 s on 2 threads vs 0.29 s on 1).
    """
    if n_cells < ONE_THREAD_BELOW_CELLS:
        return 1
    threads = torch.get_num_threads()
    return threads if _user_chose_threads() else max(1, min(threads, threads_available()))


def cell_key(name: str) -> int:
    """A cell's random-stream key from its name (NetPyNE gids, or a SurrogateCell's own name)."""
    import zlib

    return zlib.crc32(name.encode())


class StreamingRunner:
    """B cells of a streaming surrogate, advanced chunk by chunk on the data grid (engine and offline rollout).

    ``advance(current_nA)`` takes the next n data samples of each cell's current (n a multiple
    of the model step) and returns their voltages (mV), spikes included; the recurrent state,
    the last spike and the part of an action potential still to paste carry over.
    """

    def __init__(self, surrogate, features: np.ndarray, v0_mV: np.ndarray, keys: np.ndarray | None = None) -> None:
        from .decoder import StreamComposer

        c = surrogate.config
        self.s, self.factor = surrogate, c.time_coarsening
        feats = np.asarray(features, dtype=np.float64).reshape(-1, len(c.feature_names))
        self.n = feats.shape[0]
        dev = surrogate.device
        self.feat = torch.as_tensor(surrogate.feature_scaler.transform(feats), dtype=torch.float32, device=dev)
        self.state = surrogate.model.initial_state(self.n)
        with torch.no_grad():
            self.poles = surrogate.model.step_poles()
        self.fired = torch.zeros(self.n, device=dev)
        self.v_last = np.broadcast_to(np.asarray(v0_mV, dtype=np.float64), (self.n,)).copy()
        self.logit_shift = float(surrogate.spike_logit_shift)
        self.hazard_floor = HAZARD_FLOOR
        self.keys = (np.arange(self.n, dtype=np.uint64) if keys is None
                     else np.asarray(keys, dtype=np.uint64).reshape(self.n))
        refr = surrogate.spike_refractory_samples or 1
        self.refractory_steps = max(1, int(refr // self.factor))
        self.since = np.full(self.n, 10**9, dtype=np.int64)  # model steps since each cell's last spike
        self.composer = StreamComposer(surrogate.templates_for(feats), int(round(c.ap_pre_ms / surrogate.dt_ms)),
                                       self.factor)
        self.spike_steps: list[list[int]] = [[] for _ in range(self.n)]
        self.k = 0  # model steps done
        self._threads: int | None = None  # `step_threads`, chosen at the first advance and every THREADS_RECHECK_S
        self._threads_at = 0.0

    def advance(self, current_nA: np.ndarray) -> np.ndarray:
        """(B, n) current (nA) on the data grid → (B, n) voltage (mV); n must be a multiple of the model step.
        Runs on `step_threads` torch threads, chosen again every `THREADS_RECHECK_S` (the process's
        setting is restored after each call)."""
        now = time.monotonic()
        if self._threads is None or now - self._threads_at >= THREADS_RECHECK_S:
            self._threads, self._threads_at = step_threads(self.n), now
        before, threads = torch.get_num_threads(), self._threads
        if threads != before:
            torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                return self._advance(current_nA)
        finally:
            if threads != before:
                torch.set_num_threads(before)

    def _advance(self, current_nA: np.ndarray) -> np.ndarray:
        i = np.asarray(current_nA, dtype=np.float64)
        f = self.factor
        if i.ndim != 2 or i.shape[0] != self.n or i.shape[1] % f:
            raise ValueError(f"advance needs ({self.n}, multiple of {f}) samples, got {i.shape}")
        steps = i.shape[1] // f
        c = self.s.config
        i_c = torch.as_tensor(i.reshape(self.n, steps, f).mean(axis=2) / c.current_scale_nA, dtype=torch.float32,
                              device=self.feat.device)
        v_c = np.empty((self.n, steps))
        fire = np.zeros((self.n, steps), dtype=bool)
        for j in range(steps):
            x = torch.cat([i_c[:, j:j + 1], self.fired[:, None], self.feat], dim=1)
            out, self.state = self.s.model.step(x, self.state, self.poles)
            v_c[:, j] = (out[:, 0] * c.v_scale_mV + c.v_offset_mV).clamp(max=c.v_clip_mV).cpu().numpy()
            self.since += 1
            p = torch.sigmoid(out[:, 1] - self.logit_shift).cpu().numpy()
            p[p < self.hazard_floor] = 0.0
            now = (hashed_uniform(self.keys, self.k + j) < p) & (self.since >= self.refractory_steps)
            self.since[now] = 0
            fire[:, j] = now
            self.fired = torch.as_tensor(now, dtype=torch.float32, device=self.feat.device)
            for cell in np.flatnonzero(now):
                self.spike_steps[cell].append(self.k + j)
        self.k += steps
        knots = np.concatenate([self.v_last[:, None], v_c], axis=1)  # v at step boundaries
        frac = np.arange(1, f + 1) / f
        v = (knots[:, :-1, None] + (knots[:, 1:] - knots[:, :-1])[:, :, None] * frac).reshape(self.n, -1)
        self.v_last = v_c[:, -1].copy()
        return self.composer.paste(v, fire)

    def spike_times_ms(self) -> list[np.ndarray]:
        """Each cell's spike times (ms): the crossing the composer places at its step's centre."""
        off = self.composer.crossing_offset
        return [(np.array(st, dtype=float) * self.factor + off) * self.s.dt_ms for st in self.spike_steps]
