"""FactoryLab: JupyterHub sessions as Slurm jobs.

A spawn flows through these modules, in order:

``site`` (validated site file) → ``session_request`` (typed, validated user choice)
→ ``job_script`` (Jinja2 batch script) → ``slurm_client`` (the only code that runs
Slurm commands) → ``job_monitor`` (one shared ``squeue --json`` snapshot) →
``slurm.SlurmSpawner`` (the JupyterHub lifecycle) ← ``port_api`` (the session reports
its port).
"""

__version__ = "0.1.0"
