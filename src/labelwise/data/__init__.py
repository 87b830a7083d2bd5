"""Reading, checking and splitting labeled text data; streaming texts to classify and predictions out.

The public surface is re-exported here; the modules behind it are implementation details.
"""

from labelwise.data.dataset import Dataset, load_dataset
from labelwise.data.formats import FileFormat, detect_format
from labelwise.data.prediction import PredictionWriter, iter_text_batches
from labelwise.data.split import stratified_split, stratum_keys
from labelwise.data.validate import CONFLICT_RULES, ConflictRule, DataStats, ReadOptions, normalize_text, read_labeled

__all__ = [
    "CONFLICT_RULES",
    "ConflictRule",
    "DataStats",
    "Dataset",
    "FileFormat",
    "PredictionWriter",
    "ReadOptions",
    "detect_format",
    "iter_text_batches",
    "load_dataset",
    "normalize_text",
    "read_labeled",
    "stratified_split",
    "stratum_keys",
]
