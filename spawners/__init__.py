"""FactoryLab: JupyterHub sessions as Slurm jobs.

Four wings, each importing only the ones before it:

- :mod:`spawners.site`: the site file (model, loader, name and path rules, units);
- :mod:`spawners.slurm`: the only code that talks to Slurm;
- :mod:`spawners.session`: one user's session as pure rules (entitlements, request,
  job script, time left, the sentences users read);
- :mod:`spawners.hub`: the JupyterHub glue (spawner, profiles, form, API, config).

A spawn: ``hub.form`` → ``hub.options`` → ``session.entitlements`` →
``session.request`` → ``hub.spawner`` → ``hub.job_inputs`` → ``session.job`` →
``slurm.client``.
"""

__version__ = "0.1.0"
