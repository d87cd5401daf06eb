"""Every error and warning noble_neuron raises, in data-flow order (one place to catch them from).

Errors are RuntimeError subclasses (bad values in arguments raise ValueError/TypeError); warnings
are UserWarning subclasses, so ``warnings.simplefilter("error", DomainWarning)`` makes one strict.
"""

__all__ = [
    "SimulationError",
    "FlattenedGradientWarning",
    "MechanismError",
    "WriterLockError",
    "DatasetError",
    "DatasetBusyError",
    "CheckpointError",
    "DomainWarning",
    "AccuracyWarning",
    "SurrogateCellError",
    "CoarseStepWarning",
    "NetworkError",
]


class SimulationError(RuntimeError):
    """A detailed model could not be built or simulated."""


class FlattenedGradientWarning(UserWarning):
    """A number set on a SectionList replaced a density that the template made vary along it."""


class MechanismError(RuntimeError):
    """A mechanism folder could not be found, compiled or loaded."""


class WriterLockError(RuntimeError):
    """Another process is writing the same output."""


class DatasetError(RuntimeError):
    """A dataset file is missing, corrupt, truncated or does not match what was asked for."""


class DatasetBusyError(DatasetError):
    """HDF5 refused to open a dataset because another process has it open for writing (not corruption)."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, truncated or of another schema/version."""


class DomainWarning(UserWarning):
    """The surrogate is asked to extrapolate beyond the domain it was trained on."""


class AccuracyWarning(UserWarning):
    """The checkpoint's own recorded accuracy says its output should not be trusted for this use."""


class SurrogateCellError(RuntimeError):
    """A SurrogateCell is used in a way the surrogate cannot honour (raised during finitialize/run)."""


class CoarseStepWarning(UserWarning):
    """NEURON's fixed step is coarse enough to step over the surrogate's action potentials (NetCons miss spikes)."""


class NetworkError(RuntimeError):
    """A network-mode setup the surrogate engine cannot run correctly."""
