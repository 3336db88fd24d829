"""Shared fixtures: the tiny trained policy served by uvicorn in a background thread."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_policy(tiny_policy_dir):
    from embodia.policy.policy import Policy

    return Policy.from_pretrained(tiny_policy_dir)


@pytest.fixture(scope="session")
def server_url(tiny_policy):
    """ws://127.0.0.1:<free port> serving the tiny policy (no API key) for the whole session."""
    from embodia.serve.server import running_server

    with running_server(tiny_policy) as url:
        yield url
