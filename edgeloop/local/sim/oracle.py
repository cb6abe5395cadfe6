"""The oracle labeller: a simulation stand-in for the people who label samples, reading the scenario's truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgeloop.cloud.sample_ingest import SampleRef


class OracleLabeller:
    """Simulation stand-in, not a labeller: it reads the true label the local scenario kept for each request.

    Production labelling is people (or a labelling service) behind the same Labeller port
    (edgeloop.cloud.sample_ingest.Labeller); only the local stack builds this one.
    """

    def __init__(self, truth: Mapping[str, int]) -> None:
        self._truth = truth

    def label(self, refs: Sequence[SampleRef]) -> list[int | None]:
        """The scenario's true label of each sample's request, None for a request it does not know."""
        return [self._truth.get(ref.sample.request_id) for ref in refs]
