"""``python -m chaos run|bad-input ...``: the fault harness and the bad-input campaign."""

from chaos.cli import main

if __name__ == "__main__":
    main()
