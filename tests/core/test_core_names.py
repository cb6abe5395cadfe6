"""Topic, shadow and component names: every inverse must undo its function and refuse the rest."""

from __future__ import annotations

import pytest

from edgeloop.core import names
from edgeloop.core.errors import ValidationError

THINGS = ["edge-dev-1", "a", "Plant:7_line-2", "x" * 128]


@pytest.mark.parametrize("thing", THINGS, ids=["plain", "one-char", "all-classes", "128-chars"])
def test_results_topic_and_inverse(thing: str) -> None:
    topic = names.results_topic(thing)
    assert topic == f"edgeloop/things/{thing}/results"
    assert names.thing_from_results_topic(topic) == thing
    assert names.RESULTS_TOPIC_FILTER.replace("+", thing) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "edgeloop/things/dev/result",
        "edgeloop/thing/dev/results",
        "other/things/dev/results",
        "edgeloop/things/a/b/results",
        "edgeloop/things//results",
        "edgeloop/things/+/results",
        "edgeloop/things/#/results",
        "/edgeloop/things/dev/results",
    ],
    ids=["suffix", "things", "root", "extra-level", "empty-thing", "plus", "hash", "leading-slash"],
)
def test_thing_from_results_topic_refuses(topic: str) -> None:
    with pytest.raises(ValidationError) as info:
        names.thing_from_results_topic(topic)
    assert info.value.field in {"topic", "thing_name"}


@pytest.mark.parametrize("operation", ["update", "update/accepted", "update/rejected", "get", "get/accepted"])
def test_shadow_topic_and_inverse(operation: str) -> None:
    topic = names.shadow_topic("edge-dev-1", operation)
    assert topic == f"$aws/things/edge-dev-1/shadow/name/{names.HEALTH_SHADOW}/{operation}"
    assert names.thing_from_shadow_topic(topic) == "edge-dev-1"


def test_shadow_update_filter_matches_shadow_topic() -> None:
    assert names.SHADOW_UPDATE_TOPIC_FILTER.replace("+", "edge-dev-1") == names.shadow_topic("edge-dev-1", "update")


@pytest.mark.parametrize(
    "topic",
    [
        "$aws/things/edge-dev-1/shadow/update",
        "$aws/things/edge-dev-1/shadow/name/other/update",
        "$aws/things/edge-dev-1/shadow/name/edgeloop-health",
        "aws/things/edge-dev-1/shadow/name/edgeloop-health/update",
        "$aws/things/a+b/shadow/name/edgeloop-health/update",
        "edgeloop/things/edge-dev-1/results",
    ],
    ids=["classic", "other-shadow", "no-operation", "no-dollar", "wildcard-thing", "results-topic"],
)
def test_thing_from_shadow_topic_refuses(topic: str) -> None:
    with pytest.raises(ValidationError) as info:
        names.thing_from_shadow_topic(topic)
    assert info.value.field in {"topic", "thing_name"}


@pytest.mark.parametrize(
    "thing",
    ["+", "#", "dev/1", "dev+1", "dev#", "", "x" * 129, "dev 1", "dev\n", "dév"],
    ids=["plus", "hash", "slash", "plus-inside", "hash-inside", "empty", "129-chars", "space", "newline", "unicode"],
)
def test_bad_thing_names_are_refused_everywhere(thing: str) -> None:
    for build in (names.validate_thing_name, names.results_topic, lambda t: names.shadow_topic(t, "update")):
        with pytest.raises(ValidationError) as info:
            build(thing)
        assert info.value.field == "thing_name"


@pytest.mark.parametrize("model", ["ab", "iris-classifier", "m2", "a" + "b" * 39], ids=["2", "dash", "digit", "40"])
def test_good_model_names(model: str) -> None:
    assert names.validate_model_name(model) == model
    assert names.model_component_name(model) == names.MODEL_COMPONENT_PREFIX + model
    assert names.model_package_group(model) == names.MODEL_PACKAGE_GROUP_PREFIX + model


@pytest.mark.parametrize(
    "model",
    ["a", "Iris", "1iris", "iris-", "-iris", "a" * 41, "iris_v2", "iris.v2", "iris\n", "iris/x", ""],
    ids=[
        "1-char",
        "upper",
        "digit-first",
        "dash-last",
        "dash-first",
        "41",
        "underscore",
        "dot",
        "newline",
        "slash",
        "empty",
    ],
)
def test_bad_model_names(model: str) -> None:
    for build in (names.validate_model_name, names.model_component_name, names.model_package_group):
        with pytest.raises(ValidationError) as info:
            build(model)
        assert info.value.field == "model_name"


@pytest.mark.parametrize("version", [1, 2, 10, 999, 12345])
def test_component_version_round_trip(version: int) -> None:
    text = names.component_version(version)
    assert text == f"{version}.0.0"
    assert names.model_version_from_component(text) == version


@pytest.mark.parametrize("version", [0, -1])
def test_component_version_refuses_below_one(version: int) -> None:
    with pytest.raises(ValidationError) as info:
        names.component_version(version)
    assert info.value.field == "model_version"


@pytest.mark.parametrize(
    "text",
    [
        "1.2.0",
        "1.0.1",
        "0.0.0",
        "x.0.0",
        "01.0.0",
        "-1.0.0",
        "1.0",
        "1.0.0.0",
        "1.0.0-rc1",
        " 1.0.0",
        "1.0.0\n",
        "",
        "\u00b2.0.0",
        "\uff11.0.0",
    ],
    ids=[
        "minor",
        "patch",
        "zero",
        "letter",
        "leading-zero",
        "negative",
        "two-parts",
        "four-parts",
        "prerelease",
        "space",
        "newline",
        "empty",
        "superscript",
        "fullwidth",
    ],
)
def test_model_version_from_component_refuses(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        names.model_version_from_component(text)
    assert info.value.field == "component_version"


def test_artifact_prefix_is_content_addressed() -> None:
    sha = "ab" * 32
    assert names.artifact_prefix("iris-classifier", sha) == f"models/iris-classifier/{sha}/"
    with pytest.raises(ValidationError, match=r"^sha256:"):
        names.artifact_prefix("iris-classifier", "AB" * 32)
    with pytest.raises(ValidationError, match=r"^model_name:"):
        names.artifact_prefix("Iris", sha)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("edgeloop/things/+/results", "edgeloop/things/dev-1/results", True),
        ("edgeloop/things/+/results", "edgeloop/things/dev-1/other", False),
        ("edgeloop/things/+/results", "edgeloop/things/results", False),
        ("edgeloop/#", "edgeloop/things/dev-1/results", True),
        ("edgeloop/#", "other/things", False),
        ("$aws/things/+/shadow/name/+/update", "$aws/things/d/shadow/name/edgeloop-health/update", True),
        ("$aws/things/+/shadow/name/+/update", "$aws/things/d/shadow/name/edgeloop-health/update/accepted", False),
        ("a/b", "a/b/c", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert names.topic_matches(topic_filter, topic) is matches


def test_parse_named_shadow_topic_round_trips_shadow_topic() -> None:
    topic = names.shadow_topic("dev-1", "update/accepted")
    assert names.parse_named_shadow_topic(topic) == ("dev-1", names.HEALTH_SHADOW, "update/accepted")


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        ("$aws/things/dev/shadow/update", "topic"),
        ("edgeloop/things/d/results", "topic"),
        ("$aws/things/dev/shadow/name//update", "topic"),
        ("$aws/things//shadow/name/x/update", "thing_name"),
    ],
)
def test_parse_named_shadow_topic_refuses_other_topics(topic: str, field: str) -> None:
    with pytest.raises(ValidationError, match=f"^{field}:"):
        names.parse_named_shadow_topic(topic)


def test_model_from_package_group_inverts_model_package_group() -> None:
    assert names.model_from_package_group(names.model_package_group("digits")) == "digits"
    with pytest.raises(ValidationError, match="does not start with 'edgeloop-'"):
        names.model_from_package_group("other-digits")


@pytest.mark.parametrize("thing", THINGS, ids=["plain", "one-char", "all-classes", "128-chars"])
@pytest.mark.parametrize(("first", "last"), [(1, 1), (41, 45), (7, 10**17)])
def test_samples_topic_names_the_seq_range_and_inverts(thing: str, first: int, last: int) -> None:
    topic = names.samples_topic(thing, first, last)
    assert topic == f"edgeloop/things/{thing}/samples/{first}-{last}"
    assert names.topic_matches(names.SAMPLES_TOPIC_FILTER, topic)
    assert not names.topic_matches(names.RESULTS_TOPIC_FILTER, topic)
    assert names.parse_samples_topic(topic) == (thing, first, last)
    assert len(topic.encode()) <= 256, "within IoT Core's topic size"
    assert topic.count("/") <= 7, "within IoT Core's topic depth"


def test_the_samples_object_key_is_what_the_rule_template_renders() -> None:
    topic = names.samples_topic("edge-dev-1", 41, 45)
    levels = topic.split("/")  # IoT SQL topic(n) is 1-based
    rendered = names.SAMPLES_OBJECT_KEY_TEMPLATE.replace("${topic(3)}", levels[2]).replace("${topic(5)}", levels[4])
    assert names.samples_object_key(topic) == rendered == "samples/edge-dev-1/41-45.json.gz"
    assert names.parse_samples_object_key(rendered) == ("edge-dev-1", 41, 45)
    assert names.samples_object_key(topic) == names.samples_object_key(topic), "a retry lands on the same key"


@pytest.mark.parametrize(
    "text",
    ["45-41", "0-3", "01-3", "-1-3", "1-", "1", "1_3", "+1-3", "1-3-5", " 1-3", "1-" + "9" * 19, "a-b"],
    ids=["reversed", "zero", "leading-zero", "negative", "no-last", "one-number", "underscore", "plus", "three",
         "space", "too-long", "letters"],
)  # fmt: skip
def test_seq_ranges_are_refused_unless_written_by_seq_range(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        names.parse_seq_range(text)
    assert info.value.field == "seq_range"
    with pytest.raises(ValidationError):
        names.parse_samples_topic(f"edgeloop/things/dev/samples/{text}")
    with pytest.raises(ValidationError):
        names.parse_samples_object_key(f"samples/dev/{text}.json.gz")


@pytest.mark.parametrize(("first", "last"), [(0, 1), (5, 4), (-1, 3)])
def test_seq_range_refuses_what_no_batch_has(first: int, last: int) -> None:
    with pytest.raises(ValidationError, match="1 <= first <= last"):
        names.samples_topic("dev", first, last)


@pytest.mark.parametrize(
    "topic",
    [
        "edgeloop/things/dev/samples",
        "edgeloop/things/dev/samples/1-2/3",
        "edgeloop/things/dev/results/1-2",
        "edgeloop/things/+/samples/1-2",
        "other/things/dev/samples/1-2",
    ],
    ids=["old-topic", "extra-level", "results", "wildcard-thing", "root"],
)
def test_parse_samples_topic_refuses(topic: str) -> None:
    with pytest.raises(ValidationError) as info:
        names.parse_samples_topic(topic)
    assert info.value.field in {"topic", "thing_name"}


@pytest.mark.parametrize(
    "key",
    ["samples/dev/41.json", "samples/dev/41-45.json", "samples/41-45.json.gz", "results/dev/41-45.json.gz",
     "samples/dev/x/41-45.json.gz", "samples/d+v/41-45.json.gz"],
    ids=["old-key", "not-gz", "no-thing", "other-prefix", "extra-level", "bad-thing"],
)  # fmt: skip
def test_parse_samples_object_key_refuses(key: str) -> None:
    with pytest.raises(ValidationError) as info:
        names.parse_samples_object_key(key)
    assert info.value.field in {"object", "thing_name"}


def test_samples_object_key_only_renders_topics_the_rule_selects() -> None:
    with pytest.raises(ValidationError, match="does not match"):
        names.samples_object_key("edgeloop/things/dev/samples")


def test_thing_filter_binds_only_the_thing_level() -> None:
    assert (
        names.thing_filter(names.SAMPLES_TOPIC_FILTER, "{iot:thingName}") == "edgeloop/things/{iot:thingName}/samples/+"
    )
    assert names.thing_filter(names.RESULTS_TOPIC_FILTER, "dev") == names.results_topic("dev")
    with pytest.raises(ValidationError, match="is not a edgeloop/things/"):
        names.thing_filter(names.SHADOW_UPDATE_TOPIC_FILTER, "dev")
