"""``python -m rnn_apps.cli``: the ``rnn-apps`` command."""

from rnn_apps.cli import main

if __name__ == "__main__":
    main()
