"""The deployed version's accuracy from the labelled samples the cloud holds (core.samplers.weighted_accuracy).

Only random samples that carry their inclusion probability are weighted in: hard-example samples were chosen
for looking wrong, so counting them would report the hard tail, not the traffic (see docs/feedback-loop.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from edgeloop.cloud.sample_ingest import SampleCatalogue, SampleRef
from edgeloop.core.sample_payload import Sample
from edgeloop.core.samplers import AccuracyEstimate, naive_accuracy, weighted_accuracy

LabelledSample = tuple[Sample, int]
"""A sample and its true label index."""


def labelled(refs: Iterable[SampleRef], catalogue: SampleCatalogue) -> list[LabelledSample]:
    """The catalogued samples among refs that have a label, each with its (newest) label index."""
    out: list[LabelledSample] = []
    for ref in refs:
        label = catalogue.label_of(ref.thing_name, ref.seq)
        if label is not None:
            out.append((ref.sample, label.label_index))
    return out


def version_accuracy(samples: Iterable[LabelledSample], model_version: int) -> AccuracyEstimate:
    """The estimate of one version's accuracy on the traffic it served, from its weighted random samples."""
    return weighted_accuracy(
        (sample.label_index == truth, sample.inclusion)
        for sample, truth in samples
        if sample.model_version == model_version and sample.sampler == "random" and sample.inclusion is not None
    )


def sampled_accuracy(samples: Iterable[LabelledSample], model_version: int) -> float | None:
    """The share of all of a version's labelled samples it got right: biased by the hard examples, for comparison."""
    return naive_accuracy(
        sample.label_index == truth for sample, truth in samples if sample.model_version == model_version
    )
