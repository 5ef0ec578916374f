"""Development-only code: the local peers `make run` starts, demo data and commands, and the
contracts' sources, build and deploy helpers. Installed only by the local and test settings."""
