"""pytest fixtures for the stand-ins; load with ``pytest_plugins = ["tests.standins.conftest_plugin"]``.

Each fixture starts a fresh server (new port, empty store, no faults, empty request log)
for one test and stops it afterwards, releasing any request still hanging.
"""

from collections.abc import Iterator

import pytest

from tests.standins.chatwoot import ChatwootStandin
from tests.standins.llm import LLMStandin


@pytest.fixture
def llm_standin() -> Iterator[LLMStandin]:
    standin = LLMStandin().start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def chatwoot_standin() -> Iterator[ChatwootStandin]:
    standin = ChatwootStandin().start()
    try:
        yield standin
    finally:
        standin.stop()
