"""A search is capped in words (item 4 of the reliability issue): more answers 400 saying so,
never a 503 from an SQL expression SQLite finds too deep."""

from __future__ import annotations

import pytest

from runicorn_lite.api.v2 import MAX_SEARCH_WORDS
from runicorn_lite.http.query import MAX_PARAM_LEN

LIST = "/api/v2/experiments"


@pytest.fixture
def client(corpus_app, client_for):  # type: ignore[no-untyped-def]
    return client_for(corpus_app)


def _two_letter_words(n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [a + b for a in letters for b in letters][:n]


async def test_too_many_words_answer_400_naming_the_limit(client) -> None:
    text = " ".join(_two_letter_words(495))
    assert len(text) <= MAX_PARAM_LEN  # under the length limit: the word count decides
    answer = await client.get(LIST, params={"search": text})
    assert answer.status_code == 400
    assert answer.json() == {
        "detail": f"Parameter 'search' has 495 words; at most {MAX_SEARCH_WORDS} are allowed"
    }


@pytest.mark.parametrize(
    "words",
    [
        _two_letter_words(MAX_SEARCH_WORDS),
        # Letters with three case forms: the most spellings a short word is matched as.
        ["ǅǈ", "ǋǲ", *[f"ǅ{c}" for c in "abcdefghijklmnopqrstuvwxyz"][: MAX_SEARCH_WORDS - 2]],
        [f"word{i:02d}" for i in range(MAX_SEARCH_WORDS)],
    ],
    ids=["short", "three-case-forms", "long"],
)
async def test_the_most_words_allowed_are_answered(client, words: list[str]) -> None:
    answer = await client.get(LIST, params={"search": " ".join(words)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 0


async def test_repeated_words_count_once(client) -> None:
    answer = await client.get(LIST, params={"search": " ".join(["vit"] * 200)})
    assert answer.status_code == 200 and answer.json()["total"] > 0
