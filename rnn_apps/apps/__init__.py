"""The apps built on rnn_apps.cells: poetry, sentiment, translate, caption."""
