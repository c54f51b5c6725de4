# pytest only honours `pytest_plugins` in the rootdir conftest: the stand-in HTTP servers'
# fixtures (llm_standin, chatwoot_standin) are available to every test from here.
pytest_plugins = ["tests.standins.conftest_plugin"]
