"""Sentiment of movie reviews (IMDB): data, a bidirectional RNN classifier, LM pre-training, export, classify.

* :mod:`~rnn_apps.apps.sentiment.data`: the Large Movie Review Dataset read from its original layout (a
  directory or ``aclImdb_v1.tar.gz``, streamed without extracting), TensorFlow Datasets ``imdb_reviews``, a
  user's CSV/TSV of (text, label); ``<br />`` cleaning; a seeded, stratified validation split; length-bucketed,
  resumable batches.
* :mod:`~rnn_apps.apps.sentiment.model`: text standardisation and ``keras.layers.TextVectorization``, the
  classifier (embedding, :class:`~rnn_apps.layers.DeepBidirectionalRNN`, masked max+mean pooling, sigmoid)
  and the bidirectional language model that pre-trains its embedding and encoder.
* :mod:`~rnn_apps.apps.sentiment.task`: training (LM pre-training, then the classifier) and fine-tuning
  through :func:`rnn_apps.training.fit_resumable`.
* :mod:`~rnn_apps.apps.sentiment.export`: the SavedModel (raw strings in; ``serving_default`` and a TF Serving
  ``classify`` signature) and its model card.
* :mod:`~rnn_apps.apps.sentiment.classify` and :mod:`~rnn_apps.apps.sentiment.evaluate`: the library behind
  ``rnn-apps classify`` and ``rnn-apps evaluate sentiment``.
"""
