"""Translation app: sequence to sequence with attention, English → Chinese (``rnn-apps translate``)."""
