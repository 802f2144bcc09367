"""Fraud: a calibrated LightGBM classifier, an IsolationForest anomaly score, reason codes, and
approve / step-up / review thresholds chosen by expected cost against a rules baseline.

Costs are in the order's minor units: approving a fraud loses the order total; a review
costs a fixed analyst share of the median order; a step-up costs a small friction share
of the median order for honest customers, and stops :data:`STEP_UP_CATCH` of frauds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]
import polars as pl
from mlflow.pyfunc.model import PythonModel
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_curve

from models.frames import FeatureMatrix, TimeSplit

FloatArray = npt.NDArray[np.float64]
LABEL = "label"
AMOUNT = "total_minor"
REVIEW_COST_SHARE = 0.10
STEP_UP_FRICTION_SHARE = 0.02
STEP_UP_CATCH = 0.7
PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 10,
    "colsample_bytree": 0.9,
    "verbose": -1,
    "n_jobs": 1,
}
DECISIONS = ("approve", "step_up", "review")


@dataclass(frozen=True)
class Thresholds:
    step_up: float
    review: float

    def decide(self, probability: FloatArray) -> npt.NDArray[np.int64]:
        """0 approve, 1 step up, 2 review."""
        return np.where(probability >= self.review, 2, np.where(probability >= self.step_up, 1, 0)).astype(
            np.int64
        )


def expected_cost(
    decision: npt.NDArray[np.int64], label: FloatArray, amount: FloatArray, unit: float
) -> float:
    """Mean cost per order of ``decision`` (0/1/2) given truth ``label`` and order ``amount``."""
    fraud = label == 1
    cost = np.where(decision == 0, np.where(fraud, amount, 0.0), 0.0)
    cost += np.where(
        decision == 1, np.where(fraud, (1 - STEP_UP_CATCH) * amount, STEP_UP_FRICTION_SHARE * unit), 0.0
    )
    cost += np.where(decision == 2, REVIEW_COST_SHARE * unit, 0.0)
    return float(np.mean(cost))


def choose_thresholds(
    probability: FloatArray, label: FloatArray, amount: FloatArray, unit: float
) -> Thresholds:
    """The (step-up, review) pair on a grid that minimises expected cost on the given slice."""
    grid = np.unique(np.quantile(probability, np.linspace(0.5, 1.0, 41)))
    grid = np.concatenate([grid, [1.01]])
    best = (np.inf, Thresholds(1.01, 1.01))
    for step in grid:
        for review in grid[grid >= step]:
            candidate = Thresholds(float(step), float(review))
            cost = expected_cost(candidate.decide(probability), label, amount, unit)
            if cost < best[0]:
                best = (cost, candidate)
    return best[1]


RULE_COLUMNS = {"device_orders_1h", "new_device", "phone_changed_recently", "promo_code", AMOUNT}
"""What the rules baseline reads; data without these columns (your own file) is compared with
approve-all only."""


def rules_decision(frame: pl.DataFrame, large_amount: float) -> npt.NDArray[np.int64]:
    """The hand-written rules a team starts with: bursts and takeovers to review, new devices step up."""
    burst = frame["device_orders_1h"].fill_null(1).to_numpy() >= 3
    takeover = (frame["new_device"].to_numpy() > 0) & (frame["phone_changed_recently"].to_numpy() > 0)
    large_new = (frame["new_device"].to_numpy() > 0) & (frame[AMOUNT].to_numpy() > large_amount)
    welcome = (frame["promo_code"] == "WELCOME50").to_numpy()
    review = burst | takeover
    step_up = large_new | welcome
    return np.where(review, 2, np.where(step_up, 1, 0)).astype(np.int64)


def recall_at_fpr(label: FloatArray, score: FloatArray, fpr_limit: float = 0.01) -> float:
    if label.sum() == 0 or label.sum() == len(label):
        return float("nan")
    fpr, tpr, _ = roc_curve(label, score)
    return float(tpr[fpr <= fpr_limit].max())


class FraudModel(PythonModel):
    """pyfunc: order features in; calibrated ``fraud_probability``, ``anomaly_score``, ``decision``
    (approve / step_up / review) and ``reasons`` (top three features pushing towards fraud) out."""

    def __init__(
        self,
        matrix: FeatureMatrix,
        classifier: lgb.LGBMClassifier,
        calibrator: LogisticRegression,
        forest: IsolationForest,
        thresholds: Thresholds,
    ) -> None:
        self.matrix = matrix
        self.classifier = classifier
        self.calibrator = calibrator
        self.forest = forest
        self.thresholds = thresholds

    def margin(self, x: pd.DataFrame) -> FloatArray:
        return np.asarray(self.classifier.predict(x, raw_score=True), dtype=np.float64)

    def probability(self, x: pd.DataFrame) -> FloatArray:
        return np.asarray(
            self.calibrator.predict_proba(self.margin(x).reshape(-1, 1))[:, 1], dtype=np.float64
        )

    def anomaly(self, x: pd.DataFrame) -> FloatArray:
        numeric = x[self.matrix.numeric].fillna(0.0).to_numpy()
        return np.asarray(-self.forest.score_samples(numeric), dtype=np.float64)

    def reasons(self, x: pd.DataFrame, top: int = 3) -> list[str]:
        contributions = np.asarray(self.classifier.predict(x, pred_contrib=True))[:, :-1]
        names = np.array(self.matrix.columns)
        order = np.argsort(-contributions, axis=1)[:, :top]
        return [";".join(names[i] for i in row if contributions[r, i] > 0) for r, row in enumerate(order)]

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        x = self.matrix.to_pandas(model_input)
        probability = self.probability(x)
        return pd.DataFrame(
            {
                "fraud_probability": probability,
                "anomaly_score": self.anomaly(x),
                "decision": np.array(DECISIONS)[self.thresholds.decide(probability)],
                "reasons": self.reasons(x),
            }
        )


@dataclass(frozen=True)
class FraudResult:
    model: FraudModel
    metrics: dict[str, float]
    test: pl.DataFrame


def train_fraud(split: TimeSplit, features: list[str]) -> FraudResult:
    """Fit on train; calibrate probabilities and choose thresholds on calibration; evaluate on test."""
    matrix = FeatureMatrix.infer(split.train, features)
    x_train, y_train = matrix.to_pandas(split.train), split.train[LABEL].to_numpy()
    if y_train.sum() == 0:
        raise ValueError("the training slice has no positive labels")
    positives = max(1.0, float(y_train.sum()))
    classifier = lgb.LGBMClassifier(
        scale_pos_weight=min(50.0, (len(y_train) - positives) / positives), **PARAMS
    ).fit(x_train, y_train)
    forest = IsolationForest(n_estimators=100, random_state=0).fit(
        x_train[matrix.numeric].fillna(0.0).to_numpy()
    )
    calibration = split.calibration if split.calibration[LABEL].sum() > 0 else split.train
    x_cal, y_cal = matrix.to_pandas(calibration), calibration[LABEL].to_numpy()
    margin = np.asarray(classifier.predict(x_cal, raw_score=True)).reshape(-1, 1)
    calibrator = LogisticRegression().fit(margin, y_cal)
    unit = float(np.median(split.train[AMOUNT].to_numpy()))
    draft = FraudModel(matrix, classifier, calibrator, forest, Thresholds(1.01, 1.01))
    thresholds = choose_thresholds(draft.probability(x_cal), y_cal, calibration[AMOUNT].to_numpy(), unit)
    model = FraudModel(matrix, classifier, calibrator, forest, thresholds)

    x_test, y_test, amount = (
        matrix.to_pandas(split.test),
        split.test[LABEL].to_numpy(),
        split.test[AMOUNT].to_numpy(),
    )
    probability = model.probability(x_test)
    anomaly = model.anomaly(x_test)
    metrics = {
        "pr_auc": float(average_precision_score(y_test, probability)) if y_test.sum() else float("nan"),
        "recall_at_1pct_fpr": recall_at_fpr(y_test, probability),
        "anomaly_pr_auc": float(average_precision_score(y_test, anomaly)) if y_test.sum() else float("nan"),
        "expected_cost_per_order": expected_cost(thresholds.decide(probability), y_test, amount, unit),
        "baseline_approve_all_expected_cost_per_order": expected_cost(
            np.zeros(len(y_test), np.int64), y_test, amount, unit
        ),
        "threshold_step_up": thresholds.step_up,
        "threshold_review": thresholds.review,
        "fraud_rate_test": float(y_test.mean()),
        "rows_train": float(split.train.height),
        "rows_test": float(split.test.height),
    }
    if set(split.test.columns) >= RULE_COLUMNS:
        rules = rules_decision(split.test, float(np.quantile(split.train[AMOUNT].to_numpy(), 0.95)))
        metrics["baseline_rules_expected_cost_per_order"] = expected_cost(rules, y_test, amount, unit)
        metrics["baseline_rules_recall"] = float(((rules > 0) & (y_test == 1)).sum() / max(1, y_test.sum()))
        metrics["baseline_rules_pr_auc"] = (
            float(average_precision_score(y_test, rules)) if y_test.sum() else float("nan")
        )
    test = split.test.with_columns(fraud_probability=probability, anomaly_score=anomaly)
    return FraudResult(model, metrics, test)


def pr_curve_figure(test: pl.DataFrame) -> Any:
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, ax = plt.subplots(figsize=(6, 4))
    for column in ("fraud_probability", "anomaly_score"):
        precision, recall, _ = precision_recall_curve(test[LABEL].to_numpy(), test[column].to_numpy())
        ax.plot(recall, precision, label=column)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend()
    ax.set_title("Fraud: precision-recall on the holdout")
    fig.tight_layout()
    return fig


def calibration_figure(test: pl.DataFrame) -> Any:
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    fig, ax = plt.subplots(figsize=(6, 4))
    true, predicted = calibration_curve(
        test[LABEL].to_numpy(), test["fraud_probability"].to_numpy(), n_bins=8, strategy="quantile"
    )
    ax.plot(predicted, true, marker="o")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed fraud rate")
    ax.set_title("Fraud: calibration on the holdout")
    fig.tight_layout()
    return fig


def importance_figure(model: FraudModel) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    gains = model.classifier.booster_.feature_importance(importance_type="gain")
    order = np.argsort(gains)
    ax.barh(np.array(model.matrix.columns)[order], gains[order])
    ax.set_title("Fraud: feature importance (gain)")
    fig.tight_layout()
    return fig
