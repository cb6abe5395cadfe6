"""The error hierarchy: edges map these classes to exit codes, so the codes must stay stable."""

from __future__ import annotations

import inspect

import pytest

from edgeloop.core import errors
from edgeloop.core.errors import EdgeloopError, ValidationError

EXPECTED: dict[type[EdgeloopError], tuple[type[Exception], int]] = {
    errors.EdgeloopError: (Exception, 1),
    errors.ValidationError: (errors.EdgeloopError, 2),
    errors.ConfigError: (errors.ValidationError, 2),
    errors.ManifestError: (errors.ValidationError, 2),
    errors.TrainingDataError: (errors.ValidationError, 2),
    errors.UsageError: (errors.ValidationError, 2),
    errors.IntegrityError: (errors.EdgeloopError, 3),
    errors.ModelFormatError: (errors.EdgeloopError, 3),
    errors.InvalidTransitionError: (errors.EdgeloopError, 1),
    errors.ConflictError: (errors.EdgeloopError, 5),
    errors.StateStoreError: (errors.EdgeloopError, 5),
    errors.NotFoundError: (errors.EdgeloopError, 4),
    errors.RegistryError: (errors.EdgeloopError, 5),
    errors.FleetControlError: (errors.EdgeloopError, 5),
    errors.LinkError: (errors.EdgeloopError, 6),
    errors.StoreError: (errors.EdgeloopError, 7),
    errors.SigningError: (errors.RegistryError, 5),
}


def test_every_error_class_has_an_expected_row() -> None:
    defined = {
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, EdgeloopError) and obj.__module__ == errors.__name__
    }
    assert defined == set(EXPECTED)


@pytest.mark.parametrize(
    ("cls", "parent", "exit_code"), [pytest.param(c, *v, id=c.__name__) for c, v in EXPECTED.items()]
)
def test_parent_and_exit_code(cls: type[EdgeloopError], parent: type[Exception], exit_code: int) -> None:
    assert cls.__bases__ == (parent,)
    assert cls.exit_code == exit_code


@pytest.mark.parametrize(
    "cls",
    [errors.ValidationError, errors.ConfigError, errors.ManifestError, errors.TrainingDataError, errors.UsageError],
    ids=lambda c: c.__name__,
)
def test_validation_errors_name_the_field(cls: type[ValidationError]) -> None:
    exc = cls("input.dtype", "'float64'; expected one of ('float32',)")
    assert exc.field == "input.dtype"
    assert exc.message == "'float64'; expected one of ('float32',)"
    assert str(exc) == "input.dtype: 'float64'; expected one of ('float32',)"
