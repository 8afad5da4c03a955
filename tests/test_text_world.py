import numpy as np
import pytest

from survey_lib.world.text import PROMPTS, TextWorld


def gold(world, continuation, prompt="the movie"):
    return world.gold_reward([prompt], [continuation])[0]


def test_corpus_is_fluent_and_ended(world):
    rows = world.sample_corpus(500, np.random.default_rng(0))
    c = world.components([p for p, _ in rows], [t for _, t in rows])
    assert c["fluency"].min() > 0.5 and c["fluency"].mean() > 0.9
    assert c["ended"].all()
    assert set(w for _, t in rows for w in t.split()) <= set(world.vocabulary)


def test_word_salad_and_repetition_are_punished(world):
    fluent = gold(world, "had a wonderful ending and it was truly brilliant !")
    assert gold(world, "great wonderful excellent lovely fun .") < fluent - 1.0
    assert gold(world, "was great great great great .") < fluent - 1.0
    assert gold(world, "was very great and the plot was very great !") < fluent - 0.3
    assert world.components(["the movie"], ["was very great and the plot was very great !"])["repetition"][0] > 0


def test_unended_response_is_penalised(world):
    assert gold(world, "was really good") < gold(world, "was really good .") - 1.0


def test_sentiment_negation_and_intensifiers():
    assert TextWorld.sentiment("was good .") > 0
    assert TextWorld.sentiment("was not good .") < 0
    assert TextWorld.sentiment("was not bad .") > 0
    assert TextWorld.sentiment("was very good .") > TextWorld.sentiment("was good .")
    assert TextWorld.sentiment("was long .") == 0


def test_gold_prefers_positive_fluent_text(world):
    assert gold(world, "was good and the music was lovely .") > gold(world, "was bad and the music was awful .")


def test_gold_varies_over_the_corpus(world):
    rows = world.sample_corpus(1000, np.random.default_rng(1))
    g = world.gold_reward([p for p, _ in rows], [t for _, t in rows])
    assert g.std() > 0.4
    assert -1.5 < g.min() and g.max() < 2.0


def test_fluency_depends_on_the_prompt(world):
    # "the movie was ..." is fluent; "the movie the movie" is not
    assert world.fluency_logprob("the movie", "was good .") > world.fluency_logprob("the movie", "the movie .") + 1.0


def test_prompts_are_in_vocabulary(world):
    assert set(w for p in PROMPTS for w in p.split()) <= set(world.vocabulary)


def test_bad_input_names_the_row(world):
    with pytest.raises(ValueError, match="2 prompts but 1"):
        world.components(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="continuation 1"):
        world.components(["the movie", "the plot"], ["was good .", None])
    with pytest.raises(ValueError, match="length_width"):
        TextWorld(length_width=0)
