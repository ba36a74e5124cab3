"""One user's session as pure rules: what they may ask for, the checked request, the
job that runs it, its time left, and the sentences they read. No JupyterHub here."""
