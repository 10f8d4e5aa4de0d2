"""docker-compose.yml publishes contract v2 and gives the pseudonym key to the relay alone (the key is a
secret of the relays: consumers and the API decode without it)."""

from __future__ import annotations

from tests.unit.test_compose_file import config  # noqa: F401 - the fixture: `docker compose config` as JSON


def test_the_stack_publishes_v2_and_only_the_relay_has_the_pseudonym_key(config):  # noqa: F811 - the fixture
    services = config["services"]

    for name in ("relay", "projection-worker", "api"):
        assert services[name]["environment"]["CONTINUUM_KAFKA_TOPIC"] == "care.journey.v2"
    assert "CONTINUUM_PSEUDONYM_KEY" in services["relay"]["environment"]
    assert not any("CONTINUUM_PSEUDONYM_KEY" in services[name]["environment"] for name in ("projection-worker", "api"))
