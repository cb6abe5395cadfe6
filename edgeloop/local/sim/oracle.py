"""The oracle labeller: a simulation stand-in for the people who label samples, reading the scenario's truth."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from edgeloop.cloud.sample_ingest import SampleRef
from edgeloop.core.errors import ValidationError


class OracleLabeller:
    """Simulation stand-in, not a labeller: it reads the true label the local scenario kept for each request.

    Production labelling is people (or a labelling service) behind the same Labeller port
    (edgeloop.cloud.sample_ingest.Labeller); only the local stack builds this one. Labels take time: a sample
    offered at t is answered no earlier than t + delay_s (the scenario's label_delay_s), in arrival order.
    """

    def __init__(self, truth: Mapping[str, int], delay_s: float = 0.0) -> None:
        if not delay_s >= 0.0:
            raise ValidationError("label_delay_s", f"must be >= 0, got {delay_s}")
        self._truth = truth
        self.delay_s = delay_s
        self._waiting: deque[tuple[float, SampleRef]] = deque()

    def label(self, refs: Sequence[SampleRef]) -> list[int | None]:
        """The scenario's true label of each sample's request, None for a request it does not know."""
        return [self._truth.get(ref.sample.request_id) for ref in refs]

    def offer(self, refs: Sequence[SampleRef], now_s: float) -> None:
        """Samples that reached the cloud at now_s: queued for labelling."""
        self._waiting.extend((now_s, ref) for ref in refs)

    def due(self, now_s: float) -> list[tuple[SampleRef, int]]:
        """The offered samples whose labels are ready by now_s (label_delay_s after they arrived), labelled."""
        ready: list[SampleRef] = []
        while self._waiting and self._waiting[0][0] + self.delay_s <= now_s:
            ready.append(self._waiting.popleft()[1])
        return [(ref, label) for ref, label in zip(ready, self.label(ready), strict=True) if label is not None]

    @property
    def waiting(self) -> int:
        """Samples offered whose labels are not ready yet."""
        return len(self._waiting)
