"""Small experiments that show how the recurrent cells behave (``rnn-apps demo ...``)."""
