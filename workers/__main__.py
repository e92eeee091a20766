"""``python -m workers``: one inference worker, configured by ``LINEGUARD_WORKER_*`` and the options of
``lineguard worker`` (the same command, without the rest of the CLI)."""

from workers.cli import main

if __name__ == "__main__":
    main()
