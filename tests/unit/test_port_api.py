import json

import pytest

from spawners import port_api


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


def test_batchspawner_handler_is_removed():
    import batchspawner  # noqa: F401  (registers its handler on import)
    from jupyterhub import apihandlers

    import spawners.slurm  # noqa: F401  (removes it on import)

    assert not [r for r in apihandlers.default_handlers if r[0].endswith("/api/batchspawner")]
    assert port_api.handlers() == [(port_api.ROUTE, port_api.PortReportHandler)]
