"""Loads the ResNet Profile plugin; the code lives in fixtures/."""

pytest_plugins = ["fixtures.plugin"]
