"""Thin shim so that ``python cli.py ...`` works from a checkout; the CLI lives in rnn_apps.cli."""

from rnn_apps.cli import main

if __name__ == "__main__":
    main()
