"""The only code that talks to Slurm.

- records and their parsers: :mod:`.jobs`, :mod:`.partitions`, :mod:`.reservations`;
- the client (:mod:`.client`), the queue snapshot (:mod:`.queue`), the cluster's free
  resources (:mod:`.cluster`) and the accounts cache (:mod:`.accounts`);
- :mod:`.services` builds the hub-wide instances of those, one per site.

It imports the site file's model and nothing of the session rules or JupyterHub.
"""
