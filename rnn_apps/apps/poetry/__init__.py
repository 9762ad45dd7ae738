"""Char-RNN on the Complete Tang Poems: data, model, training, constrained generation, export."""
