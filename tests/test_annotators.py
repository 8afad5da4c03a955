import numpy as np
import pytest

from survey_lib.preference_data import labelled_rows
from survey_lib.world.annotators import LLAMA2_MARGIN, AnnotatorConfig, SimulatedAnnotators, gold_agreement


@pytest.fixture(scope="module")
def pairs(world):
    rng = np.random.default_rng(0)
    a, b = world.sample_corpus(1500, rng), world.sample_corpus(1500, rng)
    return [p for p, _ in a], [c for _, c in a], [c for _, c in b]


def agreement(world, pairs, **cfg):
    prompts, first, second = pairs
    annotators = SimulatedAnnotators(world, AnnotatorConfig(**cfg))
    return gold_agreement(world, prompts, first, second, annotators.label(prompts, first, second))


def test_agreement_falls_as_noise_rises(world, pairs):
    by_temperature = [agreement(world, pairs, temperature=t) for t in (0.05, 0.3, 1.0, 5.0)]
    assert by_temperature == sorted(by_temperature, reverse=True)
    assert by_temperature[0] > 0.9 and by_temperature[-1] < 0.65
    by_flip = [agreement(world, pairs, temperature=0.05, flip_rate=f) for f in (0.0, 0.2, 0.4)]
    assert by_flip == sorted(by_flip, reverse=True)
    assert by_flip[0] - by_flip[-1] > 0.25


def test_disagreement_gives_annotators_their_own_weights(world):
    same = SimulatedAnnotators(world, AnnotatorConfig(disagreement=0.0))
    differ = SimulatedAnnotators(world, AnnotatorConfig(disagreement=0.5))
    assert len(set(same.weights)) == 1
    assert len(set(differ.weights)) == 5


def test_length_bias_favours_longer_responses(world, pairs):
    prompts, first, second = pairs
    longer_first = np.array([len(a.split()) > len(b.split()) for a, b in zip(first, second)])
    rates = []
    for bias in (0.0, 0.3):
        labels = SimulatedAnnotators(world, AnnotatorConfig(length_bias=bias)).label(prompts, first, second)
        rates.append((labels.first_preferred == longer_first).mean())
    assert rates[1] > rates[0] + 0.1


def test_position_bias_favours_the_first_shown(world, pairs):
    prompts, first, second = pairs
    labels = SimulatedAnnotators(world, AnnotatorConfig(temperature=1.0, position_bias=2.0)).label(prompts, first, second)
    assert labels.first_preferred.mean() > 0.75


def test_labels_are_reproducible_for_a_seed(world, pairs):
    prompts, first, second = pairs
    one = SimulatedAnnotators(world, AnnotatorConfig(seed=3)).label(prompts, first, second)
    two = SimulatedAnnotators(world, AnnotatorConfig(seed=3)).label(prompts, first, second)
    assert np.array_equal(one.first_preferred, two.first_preferred)


def test_rows_are_in_trl_preference_format(world, pairs):
    prompts, first, second = (x[:10] for x in pairs)
    labels = SimulatedAnnotators(world).label(prompts, first, second)
    rows = labelled_rows(labels, prompts, first, second)
    assert set(rows[0]) == {"prompt", "chosen", "rejected", "annotator"}
    for row, a, b, won in zip(rows, first, second, labels.first_preferred):
        # a leading space: prompt + chosen is the full text, as TRL's trainers join them
        assert (row["chosen"], row["rejected"]) == ((" " + a, " " + b) if won else (" " + b, " " + a))
        assert (row["prompt"] + row["chosen"]).split() == row["prompt"].split() + row["chosen"].split()


def test_ratings_follow_confidence_and_give_llama2_margins(world, pairs):
    prompts, first, second = pairs
    annotators = SimulatedAnnotators(world, AnnotatorConfig(flip_rate=0.1))
    labels = annotators.label(prompts, first, second)
    judged = annotators.probability_first(prompts, first, second, labels.annotator, careless=False)
    confidence = np.abs(judged - 0.5)
    # a higher rating always means a more confident annotator (before any careless flip)
    for low, high in zip(range(3), range(1, 4)):
        assert confidence[labels.rating == low].max() < confidence[labels.rating == high].min()
    rows = labelled_rows(labels, prompts, first, second, margin=True)
    assert [r["margin"] for r in rows] == [LLAMA2_MARGIN[k] for k in labels.rating]
    assert set(np.unique(labels.rating)) == {0, 1, 2, 3}


@pytest.mark.parametrize("field, value", [("flip_rate", 0.7), ("temperature", 0.0), ("n_annotators", 0), ("disagreement", -1.0)])
def test_bad_configuration_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AnnotatorConfig(**{field: value})


def test_mismatched_lengths_are_rejected(world):
    with pytest.raises(ValueError, match="differ in length"):
        SimulatedAnnotators(world).label(["the movie"], ["was good ."], [])
