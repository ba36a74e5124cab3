"""The JupyterHub glue: the spawner, profiles, the form and its one options hook, the
API handlers, the hub's configuration, login and the idle culler."""
