"""The port between a surrogate cell and the engines that run it: what an engine may use of a cell.

The engines (`noble_neuron.neuron.engine` for whole-trace cells, `noble_neuron.neuron.network`
for network mode) see cells only through `EngineCell`, which
`noble_neuron.neuron.cell.SurrogateCell` implements; so they never import the cell module.
Voltages in mV, currents in nA, times in ms.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = ["EngineCell"]


class EngineCell(Protocol):
    """A surrogate cell as its engine sees it."""

    index: int  # process-unique, from the engine's registry
    surrogate: Any  # its noble_neuron.surrogate.model.Surrogate
    features: np.ndarray  # (F,) raw features in surrogate.config.feature_names order
    measured: Any  # its measured FICurve or recorded StepTrains (`surrogate.measured`), or None
    model_id: str | None
    soma: Any  # its NEURON Section
    drive: Any  # the nn_VoltageDrive imposing the voltage on the soma

    @property
    def clamp_target(self) -> Any:
        """The ``h.Vector`` played into the drive's target (mV): the whole predicted trace, or network
        mode's rolling epoch buffer (written by the engine, on the engine's time base)."""

    @property
    def prediction_mV(self) -> np.ndarray | None:
        """The last prediction (mV, surrogate grid t = k·dt_ms), or None before the first."""

    @property
    def prediction_key(self) -> str | None:
        """What the loaded whole-trace prediction was made for (`set_prediction`'s key), or None."""

    @property
    def injected_waveforms(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(times ms, currents nA) of each waveform added with ``inject_current``."""

    def check_soma(self) -> None:
        """Raise SurrogateCellError if the soma carries something the surrogate would silently ignore."""

    def point_processes(self) -> list:
        """Every point process on the soma."""

    def iclamps(self) -> list:
        """The IClamps on the soma."""

    def clamp_settings(self) -> list[tuple[Any, float, float, float]]:
        """(IClamp, delay ms, dur ms, amp nA) of every IClamp on the soma, as they are now."""

    def input_signature(self) -> tuple:
        """What the cell's input is made of now (compared during a run to notice changes)."""

    def render_input(self, grid_ms: np.ndarray) -> np.ndarray:
        """The cell's input current (nA) at times `grid_ms`: IClamps plus injected waveforms."""

    def set_prediction(self, v_mV: np.ndarray, input_nA: np.ndarray, amplitude_nA: float, key: str) -> None:
        """Load a whole-trace prediction made for `input_nA` into the clamp target; `key` identifies it."""

    def report_domain(self, kind: str, message: str) -> None:
        """A domain problem of this cell: warn once per `kind` (DomainWarning), raise in strict mode."""
