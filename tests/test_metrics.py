"""classify.metrics against scikit-learn on random data, including classes without positives or negatives,
and the one class rule shared by the table and the heads' early stopping."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, f1_score, roc_auc_score

from vggish_jax.classify import metrics


def multilabel_case(seed: int, n: int = 40, k: int = 6):
    """Multi-hot labels where class 1 has no positive and class 2 no negative; scores with many ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.3).astype(np.uint8)
    y[:, 1], y[:, 2] = 0, 1
    y[0, 3] = 1  # class 3 has at least one positive
    scores = np.round(rng.random((n, k)) + 0.5 * y, 1)  # rounding makes ties
    return y, scores


@pytest.mark.parametrize("seed", range(5))
def test_map_and_auc_equal_sklearn_over_classes_with_a_positive_and_a_negative(seed):
    y, s = multilabel_case(seed)
    keep = [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
    assert 1 not in keep and 2 not in keep
    want_ap = average_precision_score(y[:, keep], s[:, keep], average="macro")
    want_auc = roc_auc_score(y[:, keep], s[:, keep], average="macro")
    assert metrics.mean_average_precision(y, s) == pytest.approx(want_ap, abs=1e-12)
    assert metrics.macro_roc_auc(y, s) == pytest.approx(want_auc, abs=1e-12)
    for c in keep:
        assert metrics.average_precision(y[:, c], s[:, c]) == pytest.approx(average_precision_score(y[:, c], s[:, c]))
        assert metrics.roc_auc(y[:, c], s[:, c]) == pytest.approx(roc_auc_score(y[:, c], s[:, c]))
    per = metrics.per_class_ap(y, s)
    assert np.isnan(per[[1, 2]]).all() and np.nanmean(per) == pytest.approx(want_ap)
    assert metrics.score_pair(y, s) == pytest.approx({"mAP": want_ap, "roc_auc": want_auc})
    assert metrics.selection(y, s) == pytest.approx(want_ap)


def test_no_scorable_class_gives_nan():
    y = np.ones((5, 2), np.uint8)
    assert np.isnan(metrics.mean_average_precision(y, np.random.default_rng(0).random((5, 2))))


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_macro_f1_and_confusion_equal_sklearn(seed):
    """Class 4 is never the label (only predicted), class 5 neither: sklearn's labels=present classes rule."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 50)
    pred = np.where(rng.random(50) < 0.6, y, rng.integers(0, 5, 50))
    present = np.unique(np.concatenate([y, pred]))
    assert metrics.accuracy(y, pred) == pytest.approx(accuracy_score(y, pred))
    assert metrics.macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro", labels=present,
                                                               zero_division=0))
    np.testing.assert_array_equal(metrics.confusion(y, pred, 6), confusion_matrix(y, pred, labels=range(6)))
    probs = np.eye(6)[pred] * 0.9 + 0.01
    assert metrics.selection(y, probs) == pytest.approx(accuracy_score(y, pred))
    assert metrics.score_pair(y, pred) == pytest.approx({"accuracy": accuracy_score(y, pred),
                                                         "macro_f1": metrics.macro_f1(y, pred)})
