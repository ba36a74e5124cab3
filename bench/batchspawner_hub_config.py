# Plain batchspawner 1.3 on the same cluster, for comparison only (make bench).
# Configured the way its README suggests, with absolute paths so that it starts at all,
# and made safe to run on a shared cluster: it runs as an unprivileged account
# (bench/common.py), logs in with a random password, and its job API takes a port and
# nothing else (batchspawner's own handler sets any attribute a job posts, such as the
# commands the hub runs as root). What listens where:
# - its proxy (public 8100, API 8101): loopback of the login node only;
# - its own API (8181): the login node's address on the cluster network (the site file's
#   hub.hub_ip, passed as BENCH_HUB_IP; 10.213.0.1 on the demo cluster), never 0.0.0.0:
#   the jobs on the compute nodes post their port there, with their token;
# - the single-user servers: on their compute node, reached by the proxy at the job's
#   node (batchspawner sets the server's ip to squeue's batch host); they take hub
#   OAuth logins and tokens only.
import json
import os

import batchspawner.api
from jupyterhub.apihandlers import default_handlers
from tornado import web

from spawners.hub.port_api import own_spawner, parse_port_body


class PortOnlyHandler(batchspawner.api.BatchSpawnerAPIHandler):
    """batchspawner's route, but the only thing a job may set is its own server's port."""

    @web.authenticated
    def post(self):
        spawner = own_spawner(self, "port")
        try:
            spawner.port = parse_port_body(self.request.body)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.set_status(201)
        self.finish(json.dumps({"message": "BatchSpawner data configured"}))


default_handlers[:] = [route for route in default_handlers if route[0] != r"/api/batchspawner"]

c = get_config()  # noqa: F821
env = os.environ["BENCH_ENV"]
state = os.environ["BENCH_STATE"]
c.JupyterHub.bind_url = "http://127.0.0.1:8100"
c.JupyterHub.hub_port = 8181
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8101"
c.ConfigurableHTTPProxy.command = [os.environ["BENCH_CHP"]]
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state}/cookie_secret"
c.JupyterHub.pid_file = f"{state}/jupyterhub.pid"
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
hub_ip = os.environ.get("BENCH_HUB_IP", "10.213.0.1")
if hub_ip in ("", "0.0.0.0", "::"):  # every interface: not for a bench hub
    raise SystemExit(f"the bench hub's API must listen on one address, not {hub_ip!r}")
c.JupyterHub.hub_ip = hub_ip
c.JupyterHub.hub_connect_ip = os.environ.get("BENCH_HUB_CONNECT_IP", hub_ip)
c.JupyterHub.extra_handlers = [(r"/api/batchspawner", PortOnlyHandler)]
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["BENCH_PASSWORD"]  # random, per run
c.SlurmSpawner.batchspawner_singleuser_cmd = f"{env}/bin/batchspawner-singleuser"
c.Spawner.cmd = [f"{env}/bin/jupyterhub-singleuser"]
# Where the server listens: batchspawner's own default, 0.0.0.0 on the job's node (its
# start() resets Spawner.ip to that default whatever is configured, and hands it to the
# job in JUPYTERHUB_SERVICE_URL), so the proxy on the login node reaches it at the node's
# address. jupyterhub-singleuser accepts only the hub's OAuth logins and tokens.
c.Spawner.default_url = "/lab"
# The same timeouts as FactoryLab's hub: JupyterHub's default http_timeout (30 s) fails
# most servers of a 40-user burst on a small node, which would not be a fair comparison.
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 600
c.SlurmSpawner.req_partition = "cpu"
c.SlurmSpawner.req_runtime = "01:00:00"
c.SlurmSpawner.req_memory = "1G"
c.SlurmSpawner.req_keepvars_extra = "PATH"
c.JupyterHub.services = [{"name": "bench", "api_token": os.environ["BENCH_TOKEN"]}]
c.JupyterHub.load_roles = [
    {"name": "bench", "scopes": ["admin:users", "admin:servers", "tokens"], "services": ["bench"]}
]
