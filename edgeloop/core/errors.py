"""One error hierarchy for all of edgeloop; edges map it to exit codes, HTTP codes or batch failures."""

from __future__ import annotations


class EdgeloopError(Exception):
    """Root of every error edgeloop raises on purpose (anything else is a bug)."""

    exit_code = 1


class ValidationError(EdgeloopError):
    """Input that breaks a schema; names the offending field so the fix is obvious."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfigError(ValidationError):
    """A setting or component configuration value that cannot be used."""


class ManifestError(ValidationError):
    """A model manifest that is missing fields or holds values of the wrong type."""


class TrainingDataError(ValidationError):
    """Training data that cannot produce a trustworthy model (NaN, one class, wrong shape)."""


class UsageError(ValidationError):
    """A command-line option or argument that cannot be honoured."""


class IntegrityError(EdgeloopError):
    """Bytes that do not match the digest or signature they claim."""

    exit_code = 3


class ModelFormatError(EdgeloopError):
    """A model artifact that the runtime cannot load (not ONNX, or not matching its manifest)."""

    exit_code = 3


class InvalidTransitionError(EdgeloopError):
    """A state change the rollout state machine does not allow."""


class StateStoreError(EdgeloopError):
    """A cloud state table (rollouts, fleet health) refused or failed a call that is not a lost race."""

    exit_code = 5


class ConflictError(EdgeloopError):
    """Another writer got there first: a second active rollout, or a state written since it was read."""

    exit_code = 5


class NotFoundError(EdgeloopError):
    """A named thing (model version, component, device, object) that does not exist."""

    exit_code = 4


class RegistryError(EdgeloopError):
    """The model registry refused or failed an operation."""

    exit_code = 5


class FleetControlError(EdgeloopError):
    """Greengrass (or its stand-in) refused or failed a component or deployment operation."""

    exit_code = 5


class LinkError(EdgeloopError):
    """The device's uplink is down or did not confirm a message; the record stays buffered."""

    exit_code = 6


class StoreError(EdgeloopError):
    """The durable buffer could not read or write; nothing is acknowledged after this."""

    exit_code = 7


class SigningError(RegistryError):
    """The signing key could not sign (wrong key spec or usage, disabled, not allowed): nothing is registered."""
