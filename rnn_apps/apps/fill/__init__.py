"""Fill in the blank: a bidirectional Char-RNN predicts the characters at □ marks of a Tang poem."""
