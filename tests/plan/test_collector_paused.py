"""Planning pauses the cyclic garbage collector and gives it back as it found it, in every thread and on errors."""

from __future__ import annotations

import gc
import threading

import pytest

from storyforge import api
from storyforge.errors import StoryError
from storyforge.plan.assemble import collector_paused

FILM = ("storyforge: 1\ntitle: T\nscenes:\n  - id: s\n    shots:\n"
        "      - {id: a, prompt: '{{ film.title }} at dawn', duration: 2s}\n")


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_plan_gives_the_collector_back_on_after_success_and_after_an_error(collector_on, write_story) -> None:
    assert api.plan(write_story(FILM)).jobs[0].prompt == "T at dawn."
    assert gc.isenabled()
    with pytest.raises(StoryError):
        api.plan(write_story(FILM.replace("film.title", "film.nope")))
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_on, write_story) -> None:
    gc.disable()
    api.plan(write_story(FILM))
    assert not gc.isenabled()


def test_plans_made_at_once_in_threads_turn_it_back_on_only_when_the_last_ends(collector_on) -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with collector_paused():
            second_in.set()
            first_out.wait(10)
            seen.append(gc.isenabled())  # the first has ended; this one still plans

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen == [False]
    assert gc.isenabled()
