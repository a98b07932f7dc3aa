"""Intent classification with out-of-scope (OOS) detection.

The classifier reads the query vector the dialogue manager already computed for retrieval
(the shared `Embedder`, L2-normalised rows) and, cheaply, the raw text: features are the
embedding hstacked with word and character n-gram TF-IDF, fed to one linear SVM. Its
decision values become probabilities through a softmax with a fitted temperature
(temperature scaling, minimising held-out log-loss), so `confidence` can be thresholded.
OOS detection is calibrated without any OOS data, on intents held out as pseudo-unknown,
and a floor on the cosine to the nearest training example flags text far from everything
the bot knows (weather, stock tips, recipes) whatever the linear model says. A trained
classifier is saved as numpy arrays plus JSON, never as a pickle.

    config.py         IntentClassifierConfig and the names of the OOS scores
    errors.py         IntentTrainingError, IntentModelError
    training_data.py  checking and fingerprinting the training rows
    features.py       embedding + TF-IDF feature rows
    linear.py         the linear SVM, reduced to its arrays
    scoring.py        probabilities and OOS signals of a trained model, the OOS combiner
    calibration.py    temperature, combiner and thresholds from held-out intents
    persistence.py    the saved files (intents.json, intents.npz, intents.vocab.json)
    classifier.py     EmbeddingIntentClassifier: train, predict, save, load

Importing this package does not import torch.
"""

from bot.intents.classifier import EmbeddingIntentClassifier
from bot.intents.config import OOS_SCORES, IntentClassifierConfig, OosScore
from bot.intents.errors import IntentModelError, IntentTrainingError

__all__ = [
    "OOS_SCORES",
    "EmbeddingIntentClassifier",
    "IntentClassifierConfig",
    "IntentModelError",
    "IntentTrainingError",
    "OosScore",
]
