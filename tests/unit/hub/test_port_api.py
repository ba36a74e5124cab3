import json

import pytest

from spawners.hub import port_api


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[8888]",
        b'{"port": "8888"}',
        b'{"port": 8888.0}',
        b'{"port": true}',
        b'{"port": 80}',
        b'{"port": 65536}',
        b'{"port": -1}',
        b'{"port": 8888, "ip": "10.0.0.1"}',
        b'{"batch_submit_cmd": "rm -rf /"}',
        b'{"ip": "evil.example"}',
        b"\xff\xfe",
    ],
)
def test_anything_but_a_port_is_refused(body):
    with pytest.raises(ValueError):
        port_api.parse_port_body(body)


@pytest.mark.parametrize("port", [1024, 8888, 65535])
def test_ports_in_range_are_accepted(port):
    assert port_api.parse_port_body(json.dumps({"port": port}).encode()) == port


def test_factorylab_hub_config_removes_batchspawner_handler():
    import batchspawner  # noqa: F401  (registers its handler on import)
    from jupyterhub import apihandlers
    from traitlets.config import Config

    from spawners.hub.config import configure_hub

    from ..conftest import REPO

    def legacy_routes():
        return [r for r in apihandlers.default_handlers if r[0].endswith("/api/batchspawner")]

    assert legacy_routes(), "importing batchspawner registers its handler"
    config = Config()
    configure_hub(config, str(REPO / "hub_config" / "site.local.yaml"))
    assert not legacy_routes()
    assert config.JupyterHub.extra_handlers[0] == (port_api.ROUTE, port_api.PortReportHandler)
    assert config.JupyterHub.spawner_class == "factorylab-profiles"
