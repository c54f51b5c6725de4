from collections.abc import Iterator

import pytest

from tests.standins.llm import LLMStandin

# Not `pytest_plugins = ["tests.standins.conftest_plugin"]`: pytest refuses that in a
# conftest below the rootdir, and importing the plugin module here makes pytest warn when
# another module loads it as a plugin. Same fixture, built on the shared stand-in.


@pytest.fixture
def llm_standin() -> Iterator[LLMStandin]:
    standin = LLMStandin().start()
    try:
        yield standin
    finally:
        standin.stop()
