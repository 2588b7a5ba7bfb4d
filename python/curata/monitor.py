"""Drift monitoring: compare production windows with a reference, localise and record the drift.

:class:`DriftMonitor` is built once from a reference sample (a numpy array, a torch tensor or a
pyarrow Table) and then checks windows of production data with :meth:`DriftMonitor.check`. Each
check returns a :class:`DriftReport`:

* per monitored column and test, the statistic, p-value, multiple-testing adjusted p-value and
  decision (numeric columns: :func:`curata.drift.ks` and friends; string, dictionary and bool
  columns of a Table: :func:`curata.drift.chi2` / :func:`curata.drift.psi` on the categories);
* a dataset decision (``drift``) after one multiple-testing correction over every p-value the
  check computed (Bonferroni or Benjamini-Hochberg, :func:`curata.drift.correct`);
* the top drifting columns;
* the per-cluster share shift: k-means (:func:`curata.curate.kmeans`) is fitted once on the
  reference embeddings, window rows are assigned to the nearest centroid, and the shares are
  compared (chi-square test of the counts plus the per-cluster share difference);
* the per-class prediction shift when predictions are given (class frequencies by chi-square,
  and for probabilities a KS test per class column: black-box shift detection, BBSD);
* schema drift of Arrow tables (columns added or removed, type changes, null-rate jumps).

Every check is appended to :attr:`DriftMonitor.history` (a pyarrow Table), alert callbacks
registered with :meth:`DriftMonitor.on_alert` run when a check finds drift, and
:meth:`DriftMonitor.to_html` writes a self-contained HTML report with inline SVG plots.
:func:`skew` compares the same features between a training and a serving table
(training/serving skew), optionally joined on a key.

pyarrow is optional (``pip install curata[arrow]``): it is imported only when a Table is passed,
when :attr:`DriftMonitor.history` is read, or by :func:`skew` on tables.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import numbers
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import _array, _drift_input, _io, drift, report
from ._cluster import kmeans

__all__ = [
    "DriftMonitor",
    "DriftReport",
    "ColumnTest",
    "ClusterShift",
    "ClassShift",
    "SchemaDrift",
    "SkewReport",
    "skew",
]

log = logging.getLogger("curata.monitor")

# test name -> (function, has a p-value, minimum values per sample)
_NUMERIC_TESTS: dict[str, tuple[Callable, bool, int]] = {
    "ks": (drift.ks, True, 1),
    "cramervonmises": (drift.cramervonmises, True, 2),
    "mannwhitneyu": (drift.mannwhitneyu, True, 1),
    "wasserstein": (drift.wasserstein, False, 1),
    "energy": (drift.energy, False, 1),
    "chi2": (drift.chi2, True, 1),
    "psi": (drift.psi, False, 1),
    "jensen_shannon": (drift.jensen_shannon, False, 1),
    "hellinger": (drift.hellinger, False, 1),
    "tvd": (drift.tvd, False, 1),
}
_BINNED = ("chi2", "psi", "jensen_shannon", "hellinger", "tvd")
# tests computed from one sort of each column (curata.drift.column_tests)
_SORTED = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy")
_CORRECTIONS = ("bonferroni", "fdr")
_NAN_POLICIES = ("raise", "omit")
INSUFFICIENT = "insufficient data"
MISSING = "missing"


# ---------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ColumnTest:
    """One test on one column.

    Attributes
    ----------
    column : str
        Column name (``"0"``, ``"1"``, ... for arrays: the column index).
    test : str
        ``"ks"``, ``"chi2"``, ``"psi"``, ...
    kind : str
        ``"numeric"`` or ``"categorical"``.
    statistic : float
        NaN when the test could not run (``status == "insufficient data"``).
    pvalue, adjusted_pvalue : float
        Raw and multiple-testing adjusted p-value; NaN for distances (no p-value) and for
        columns that could not be tested.
    threshold : float or None
        Decision threshold of a distance (``thresholds`` of :class:`DriftMonitor`), else None.
    drift : bool
        ``adjusted_pvalue <= alpha`` for tests, ``statistic > threshold`` for distances with a
        threshold, False otherwise.
    n_ref, n_cur : int
        Values compared (NaN and nulls omitted).
    nan_ref, nan_cur : int
        NaN values omitted (``nan_policy="omit"``); Arrow nulls are not counted here (see
        :class:`SchemaDrift` for null rates).
    status : str
        ``"ok"``, ``"insufficient data"`` (fewer values than the test needs) or ``"missing"``
        (the column is absent from the window or has an incompatible type; see
        :class:`SchemaDrift`). Untested entries have NaN statistic and p-values, never drift,
        and their NaN p-value still counts in the number of corrected tests.
    """

    column: str
    test: str
    kind: str
    statistic: float
    pvalue: float
    adjusted_pvalue: float
    threshold: float | None
    drift: bool
    n_ref: int
    n_cur: int
    nan_ref: int
    nan_cur: int
    status: str = "ok"


@dataclass(frozen=True)
class ClusterShift:
    """Share of window rows per reference k-means cluster.

    Attributes
    ----------
    ref_counts, cur_counts : numpy array (k,) int64
        Rows per cluster in the reference (its k-means labels) and in the window (nearest
        centroid, lowest index on ties).
    ref_share, cur_share, share_diff : numpy array (k,) float64
        Shares and ``cur_share - ref_share``.
    statistic, pvalue, adjusted_pvalue : float
        Chi-square test of homogeneity of the two count vectors (:func:`curata.drift.chi2` on
        counts); the adjusted p-value is from the check's multiple-testing correction.
    drift : bool
    n_skipped : int
        Window rows not assigned (NaN or infinite embedding values).
    """

    ref_counts: np.ndarray
    cur_counts: np.ndarray
    ref_share: np.ndarray
    cur_share: np.ndarray
    share_diff: np.ndarray
    statistic: float
    pvalue: float
    adjusted_pvalue: float
    drift: bool
    n_skipped: int = 0


@dataclass(frozen=True)
class ClassShift:
    """Shift of the predicted classes between the reference and the window.

    Attributes
    ----------
    classes : numpy array (C,)
        Class labels (``0 .. C-1`` for probabilities).
    ref_counts, cur_counts : numpy array (C,) int64
        Predicted class counts (argmax of probabilities, lowest class on ties).
    ref_share, cur_share, share_diff : numpy array (C,) float64
    statistic, pvalue, adjusted_pvalue : float
        Chi-square test of the two count vectors.
    drift : bool
    bbsd : list of ColumnTest or None
        Probabilities only: KS test of each class's probability column (``column`` is
        ``"class <c>"``), part of the check's multiple-testing family.
    """

    classes: np.ndarray
    ref_counts: np.ndarray
    cur_counts: np.ndarray
    ref_share: np.ndarray
    cur_share: np.ndarray
    share_diff: np.ndarray
    statistic: float
    pvalue: float
    adjusted_pvalue: float
    drift: bool
    bbsd: list | None = None


@dataclass(frozen=True)
class SchemaDrift:
    """Differences between the reference and the window schema (Arrow tables).

    Attributes
    ----------
    added : list of str
        Columns of the window absent from the reference (not tested).
    removed : list of str
        Monitored reference columns absent from the window (not tested).
    type_changed : dict str -> (str, str)
        Column -> (reference type, window type), logical types: a dictionary-encoded or
        large string column is "string", so a change of encoding alone is not reported. A
        numeric -> numeric change (int64 -> double) is still tested; a column whose kind
        changed (numeric <-> categorical) is not (status ``"missing"``).
    null_rate : dict str -> (float, float)
        Columns whose null rate moved by more than ``null_rate_threshold``:
        column -> (reference rate, window rate). Empty for a window below ``min_rows`` rows.
    """

    added: list
    removed: list
    type_changed: dict
    null_rate: dict

    @property
    def changed(self) -> bool:
        """True when any of the four lists is non-empty."""
        return bool(self.added or self.removed or self.type_changed or self.null_rate)


@dataclass(frozen=True)
class DriftReport:
    """Result of one :meth:`DriftMonitor.check`.

    Attributes
    ----------
    timestamp : datetime.datetime
        Timezone-aware (UTC unless the caller gave another zone).
    n_rows : int
        Window rows.
    n_reference : int
        Reference rows.
    status : str
        ``"ok"`` or ``"insufficient data"`` (a window with fewer than ``min_rows`` rows: nothing
        is tested; ``drift`` is False unless the schema of a Table window changed).
    drift : bool
        Dataset decision: any corrected test rejected, any distance exceeded its threshold, or
        the schema changed.
    feature_drift, cluster_drift, class_drift, schema_drift : bool
        The parts of the decision.
    alpha : float
    correction : str
    n_tests : int
        p-values in the multiple-testing family (column tests, the cluster and class chi-square
        tests and the BBSD tests).
    results : list of ColumnTest
        One entry per (test, monitored column), tests in the order given, columns in order.
    top_columns : list of str
        Drifting columns, most significant first: ranked by their smallest adjusted p-value, then
        by the largest statistic of the test giving it (distances without a p-value rank after
        every column with one), then by column order; at most ``top_k``.
    clusters : ClusterShift or None
    classes : ClassShift or None
    schema : SchemaDrift or None
        Arrow tables only.
    nan_counts : dict str -> int
        Window NaN values omitted per column (``nan_policy="omit"``; columns without NaN absent).
    """

    timestamp: _dt.datetime
    n_rows: int
    n_reference: int
    status: str
    drift: bool
    feature_drift: bool
    cluster_drift: bool
    class_drift: bool
    schema_drift: bool
    alpha: float
    correction: str
    n_tests: int
    results: list = field(default_factory=list)
    top_columns: list = field(default_factory=list)
    clusters: ClusterShift | None = None
    classes: ClassShift | None = None
    schema: SchemaDrift | None = None
    nan_counts: dict = field(default_factory=dict)

    def result(self, column: Any, test: str | None = None) -> ColumnTest:
        """The :class:`ColumnTest` of ``column`` (name or array index) for ``test``.

        Parameters
        ----------
        column : str or int
            Column name (Tables) or array index (compared as ``str(column)``).
        test : str, optional
            Test name; default the first test run on that column.

        Returns
        -------
        ColumnTest
            Raises ``KeyError`` when there is no such result. O(number of results).
        """
        name = str(column)
        for r in self.results:
            if r.column == name and (test is None or r.test == test):
                return r
        raise KeyError(f"no result for column {name!r}" + (f" and test {test!r}" if test else ""))

    @property
    def min_pvalue(self) -> float:
        """Smallest raw p-value of the check (NaN when no p-value was computed)."""
        return _min_finite([r.pvalue for r in self._all_tests()] + self._extra_p("pvalue"))

    @property
    def min_adjusted_pvalue(self) -> float:
        """Smallest adjusted p-value of the check (NaN when no p-value was computed)."""
        return _min_finite([r.adjusted_pvalue for r in self._all_tests()] + self._extra_p("adjusted_pvalue"))

    @property
    def drifting_columns(self) -> list:
        """Every drifting column (unranked, column order)."""
        seen: list = []
        for r in self.results:
            if r.drift and r.column not in seen:
                seen.append(r.column)
        return seen

    def _all_tests(self) -> list:
        out = list(self.results)
        if self.classes is not None and self.classes.bbsd:
            out.extend(self.classes.bbsd)
        return out

    def _extra_p(self, attr: str) -> list:
        return [getattr(s, attr) for s in (self.clusters, self.classes) if s is not None]

    def summary(self) -> str:
        """One line for logs (a str without newline): timestamp, rows, then the status when the
        window was not tested, else the drift decision, the first 5 top columns, the adjusted
        cluster / class p-values when computed and "schema changed". O(1)."""
        if self.status != "ok":
            return f"{self.timestamp.isoformat()}: {self.n_rows} rows, {self.status}"
        parts = [f"{self.timestamp.isoformat()}: {self.n_rows} rows, drift={self.drift}"]
        if self.top_columns:
            parts.append("top columns " + ", ".join(self.top_columns[:5]))
        if self.clusters is not None:
            parts.append(f"cluster p={self.clusters.adjusted_pvalue:.3g}")
        if self.classes is not None:
            parts.append(f"class p={self.classes.adjusted_pvalue:.3g}")
        if self.schema is not None and self.schema.changed:
            parts.append("schema changed")
        return "; ".join(parts)


def _min_finite(values: list) -> float:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.min()) if v.size else math.nan


# ---------------------------------------------------------------------------------- arrow
def _pyarrow():
    try:
        import pyarrow  # noqa: PLC0415  (optional dependency)
    except ImportError as exc:
        raise ImportError("this needs pyarrow (pip install 'curata[arrow]')") from exc
    return pyarrow


def _is_table(x: Any) -> bool:
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(x, (pa.Table, pa.RecordBatch))


def _arrow_kind(t: Any) -> str | None:
    """'numeric', 'categorical', 'embedding' or None (not monitored) for an Arrow type."""
    pa = _pyarrow()
    types = pa.types
    if types.is_dictionary(t):
        return "categorical"
    if types.is_boolean(t) or types.is_string(t) or types.is_large_string(t):
        return "categorical"
    if hasattr(types, "is_string_view") and types.is_string_view(t):
        return "categorical"
    if types.is_integer(t) or types.is_floating(t) or types.is_decimal(t):
        return "numeric"
    if types.is_fixed_size_list(t) and (types.is_floating(t.value_type) or types.is_integer(t.value_type)):
        return "embedding"
    return None


def _logical_type(t: Any) -> str:
    """Type name that ignores the storage encoding: dictionary<values=string> and large_string
    are both "string" (a change of encoding is not schema drift)."""
    pa = _pyarrow()
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_large_string(t) or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t)):
        return "string"
    if pa.types.is_large_binary(t):
        return "binary"
    return str(t)


def _arrow_numeric(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with nulls as NaN, null mask) of a numeric chunked array."""
    pa = _pyarrow()
    col = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    # safe=False: integers beyond 2^53 (ids, hashes, nanosecond counts) round to the nearest
    # float64, as numpy converts an int64 array; the safe cast raised ArrowInvalid on them.
    values = col.cast(pa.float64(), safe=False).fill_null(math.nan).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64), nulls


def _arrow_labels(col: Any) -> np.ndarray:
    """Non-null category values of a string/dictionary/bool column as a numpy array."""
    col = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    pa = _pyarrow()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    col = col.drop_null()
    if pa.types.is_boolean(col.type):
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(col.to_pylist(), dtype=object).astype(str) if len(col) else np.zeros(0, dtype=str)


def _arrow_embedding(col: Any, name: str) -> np.ndarray:
    col = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    if col.null_count:
        raise ValueError(f"embedding column {name!r} has {col.null_count} null rows; drop them before monitoring")
    size = col.type.list_size
    flat = col.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float64).reshape(len(col), size)


# ---------------------------------------------------------------------------------- inputs
def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not (0 < float(alpha) < 1):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _check_tests(tests: Any, name: str, allowed: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tests, str):
        tests = (tests,)
    try:
        tests = tuple(tests)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of test names, got {type(tests).__name__}") from None
    for t in tests:
        if t not in allowed:
            raise ValueError(f"{name} entries must be in {sorted(allowed)}, got {t!r}")
    if len(set(tests)) != len(tests):
        raise ValueError(f"{name} must not repeat a test, got {tests}")
    return tests


def _timestamp(ts: Any) -> _dt.datetime:
    if ts is None:
        return _dt.datetime.now(_dt.timezone.utc)
    if isinstance(ts, _dt.datetime):
        aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=_dt.timezone.utc)
        try:
            # The history stores UTC: a time whose UTC equivalent is outside the datetime range
            # (year 1 with a positive offset, year 9999 with a negative one) would make every
            # later read of the history fail, so it is refused here, before anything is recorded.
            aware.astimezone(_dt.timezone.utc)
        except OverflowError:
            raise ValueError(f"timestamp must be representable in UTC (years 1-9999), got {ts!r}") from None
        return aware
    if isinstance(ts, (int, float, np.integer, np.floating)) and not isinstance(ts, bool):
        try:
            return _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc)
        except (ValueError, OverflowError, OSError):  # NaN, inf, beyond the years 1-9999
            raise ValueError(f"timestamp must be finite POSIX seconds within the years 1-9999, got {ts!r}") from None
    if isinstance(ts, str):
        try:
            return _timestamp(_dt.datetime.fromisoformat(ts))
        except ValueError:
            raise ValueError(f"timestamp must be an ISO 8601 date/time string, got {ts!r}") from None
    raise TypeError(f"timestamp must be a datetime, ISO 8601 string, POSIX seconds or None, got {type(ts).__name__}")


@dataclass
class _Sample:
    """A reference or window split into what the monitor tests."""

    n_rows: int
    numeric: np.ndarray  # (n, Dn) float64, NaN = missing (NaN value or Arrow null)
    nan_counts: np.ndarray  # (Dn,) genuine NaN values (not nulls)
    categorical: list  # Dc arrays of non-null category values
    embeddings: np.ndarray | None  # (n, E) float64 for clustering
    schema: dict | None = None  # name -> (type str, kind, null rate) for tables
    n_values: np.ndarray | None = None  # (Dn,) values per numeric column (NaN and nulls not counted)


class DriftMonitor:
    """Watch production windows for drift away from a reference sample.

    Parameters
    ----------
    reference : array (N, D) or (N,), torch tensor, or pyarrow Table / RecordBatch
        The data the model was trained or validated on. Arrays and CPU/CUDA torch tensors are
        copied to a float64 host array; their columns are named ``"0" .. "D-1"``. In a Table,
        integer, floating and decimal columns are numeric; string, dictionary and bool columns
        are categorical; a fixed-size-list column of numbers can serve as ``embeddings``; other
        types are not monitored (logged once).
    tests : sequence of str, default ("ks",)
        Tests run on every numeric column: p-value tests ``"ks"``, ``"cramervonmises"``,
        ``"mannwhitneyu"``, ``"chi2"`` (on ``n_bins`` reference-quantile bins) and distances
        ``"wasserstein"``, ``"energy"``, ``"psi"``, ``"jensen_shannon"``, ``"hellinger"``,
        ``"tvd"`` (see :mod:`curata.drift`).
    categorical_tests : sequence of str, default ("chi2", "psi")
        Tests run on categorical columns of a Table (``"chi2"`` and the binned distances, on the
        categories).
    alpha : float, default 0.05
        Level of the dataset decision.
    correction : {"fdr", "bonferroni"}, default "fdr"
        Multiple-testing correction applied once per check to every p-value it computes (column
        tests, cluster and class chi-square tests, BBSD tests): Benjamini-Hochberg (the dataset
        decision is then Simes' global test) or Bonferroni (:func:`curata.drift.correct`).
    thresholds : mapping str -> float, optional
        Decision thresholds of distances, e.g. ``{"psi": 0.25, "wasserstein": 0.1}``: a column
        drifts when the distance exceeds its threshold. Distances without a threshold are
        reported but never decide. Thresholds are not part of the multiple-testing correction.
        A threshold for a distance in neither ``tests`` nor ``categorical_tests`` raises
        ValueError (it could never decide).
    columns : sequence of int (arrays) or str (Tables), optional
        Columns to monitor (default: all numeric and categorical columns).
    embeddings : None, sequence of int/str, or str (Table fixed-size-list column), optional
        Columns clustered for the cluster share shift. Default: the monitored numeric columns,
        each standardised by its reference mean and standard deviation (so that k-means is not
        dominated by the column with the largest scale). Columns named here are used as they are.
    n_clusters : int or None, default 8
        k of the reference k-means; None or 0 disables the cluster share shift. Must not exceed
        the number of reference rows with finite embeddings.
    cluster_fit_rows : int or None, default 50_000
        k-means is fitted on at most this many reference rows (finite ones), drawn without
        replacement by ``np.random.default_rng([seed, 2]).choice(n, cluster_fit_rows,
        replace=False)`` and sorted; None fits on all of them. The reference cluster shares are
        then counted over every reference row by the same nearest-centroid assignment as the
        windows (lowest centroid index on ties), so both sides of the comparison are assigned
        alike.
    predictions : array (N,) of class labels or (N, C) of class probabilities, optional
        Reference predictions; :meth:`check` then accepts window predictions of the same form.
        They need not come from the same rows as ``reference``.
    seed : int, default 0
        Seed of the k-means initialisation (nothing else is random).
    nan_policy : {"raise", "omit"}, default "raise"
        NaN values in numeric columns: "raise" raises ValueError naming the column and the
        number of NaN (at construction for the reference, in :meth:`check` for the window);
        "omit" drops them per column and counts them (:attr:`ColumnTest.nan_cur`,
        :attr:`DriftReport.nan_counts`). Arrow nulls are always dropped (and tracked by the
        schema null rates). Rows with a NaN embedding are left out of the clustering.
    n_bins : int, default 10
        Reference-quantile bins of the binned tests on numeric columns.
    null_rate_threshold : float, default 0.1
        A Table column's null rate moving by more than this is schema drift (windows of at
        least ``min_rows`` rows).
    min_rows : int, default 1
        Windows with fewer rows are not tested: the report says ``"insufficient data"`` and
        ``drift=False``. Independently, a column left with fewer values than a test needs (1,
        2 for Cramér-von Mises) gets NaN results and status ``"insufficient data"``, and counts
        as a non-rejecting p-value in the correction.
    top_k : int, default 10
        Length of :attr:`DriftReport.top_columns`.

    Attributes
    ----------
    numeric_columns, categorical_columns : list of str
        The monitored columns.
    n_clusters : int
        k of the fitted reference k-means (0: no cluster share shift).
    last_report : DriftReport or None
        The latest check.
    history : pyarrow.Table
        One row per check (see the property); ``history_rows`` is the same without pyarrow.

    Methods: :meth:`check`, :meth:`on_alert`, :meth:`to_html`, :meth:`skew`.

    Notes
    -----
    Construction copies the monitored reference columns (8 N D bytes), sorts them once when a
    sort-based test is configured (``ks``, ``cramervonmises``, ``mannwhitneyu``,
    ``wasserstein``, ``energy``: another 8 N D bytes of sorted keys, O(N D) radix sort) and,
    with clustering, fits k-means once: O(25 min(N, cluster_fit_rows) k E). A check sorts each
    window column once for all the sort-based tests (tests whose testable columns are the same
    share one pass; Cramér-von Mises needs 2 values per sample, the others 1) and walks it
    against the presorted reference: O(M log M + N + M) per column, then each test's p-values;
    the binned tests (``chi2``, ``psi``, ...) bin the columns on their own. Plus O(M k E) for
    the cluster assignment; nothing N x M is materialised. Every number equals what the
    single-test functions (:func:`curata.drift.ks`, ...) give on the same columns, bit for bit.

    Measured on a loaded 2-core machine (2 threads): building on 100k x 64 with k = 8 takes
    ~1-3 s (50k-row fit; the reference sort ~0.1 s); a check of a 100k x 64 window with KS
    costs about 0.85x ``curata.drift.ks`` on it, and with all five sort-based tests about
    0.3x the five single-test calls (docs/benchmarks.md, Monitoring).

    A monitor is not thread-safe: call :meth:`check` from one thread at a time.

    Constant columns: ``ks``, ``mannwhitneyu`` and ``chi2`` give p-value 1 (statistic 0; U = n m / 2)
    when both samples hold the same single value, and a small p-value when the window moved to
    another constant. ``cramervonmises`` on two identical constant samples gives T = 0.375
    and p ~ 0.085 at n = 50, m = 40 (its tie handling; see scipy's ``cramervonmises_2samp``).
    """

    def __init__(
        self,
        reference: Any,
        *,
        tests: Sequence[str] = ("ks",),
        categorical_tests: Sequence[str] = ("chi2", "psi"),
        alpha: float = 0.05,
        correction: str = "fdr",
        thresholds: Mapping[str, float] | None = None,
        columns: Sequence[Any] | None = None,
        embeddings: Any = None,
        n_clusters: int | None = 8,
        cluster_fit_rows: int | None = 50_000,
        predictions: Any = None,
        seed: int = 0,
        nan_policy: str = "raise",
        n_bins: int = 10,
        null_rate_threshold: float = 0.1,
        min_rows: int = 1,
        top_k: int = 10,
    ) -> None:
        self.tests = _check_tests(tests, "tests", list(_NUMERIC_TESTS))
        self.categorical_tests = _check_tests(categorical_tests, "categorical_tests", list(_BINNED))
        self.alpha = _check_alpha(alpha)
        if correction not in _CORRECTIONS:
            raise ValueError(f"correction must be one of {list(_CORRECTIONS)}, got {correction!r}")
        self.correction = correction
        self.thresholds = self._check_thresholds(thresholds)
        if nan_policy not in _NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {list(_NAN_POLICIES)}, got {nan_policy!r}")
        self.nan_policy = nan_policy
        self.n_bins = _array.check_count(n_bins, "n_bins", allow_none=False, minimum=1)
        self.null_rate_threshold = _array.check_probability(null_rate_threshold, "null_rate_threshold")
        self.min_rows = _array.check_count(min_rows, "min_rows", allow_none=False, minimum=1)
        self.top_k = _array.check_count(top_k, "top_k", allow_none=False, minimum=0)
        self.seed = _array.check_seed(seed)
        self._callbacks: list[Callable] = []
        self._history: list[dict] = []
        self.last_report: DriftReport | None = None
        self._last_tested: DriftReport | None = None

        self._tabular = _is_table(reference)
        if self._tabular:
            self._setup_table(reference, columns, embeddings)
        else:
            self._setup_array(reference, columns, embeddings)
        self._reference = self._extract(reference, "reference")
        if self._reference.n_rows < 1:
            raise ValueError(f"reference must have at least 1 row, got {self._reference.n_rows}")
        self._ref_sorted = None
        self._ref_no_inf = None
        if self.numeric_columns and any(t in _SORTED for t in self.tests):
            self._ref_sorted = drift._SortedReference(self._reference.numeric)
        self._setup_clusters(n_clusters, cluster_fit_rows)
        self._setup_predictions(predictions)
        self._require_scipy()

    # ------------------------------------------------------------------ construction
    def _require_scipy(self) -> None:
        """Chi-square p-values and Cramér-von Mises' asymptotic ones come from ``scipy.special``, an
        optional dependency (``pip install "curata[drift]"``): a monitor that will need it fails
        here, with what needs it, rather than at its first check. Importing it now also keeps the
        import (~0.2 s) out of the first check's latency."""
        needs = []
        if self.numeric_columns and "chi2" in self.tests:
            needs.append("chi2 on numeric columns")
        if self.numeric_columns and "cramervonmises" in self.tests:
            needs.append("cramervonmises (asymptotic p-values)")
        if self.categorical_columns and "chi2" in self.categorical_tests:
            needs.append("chi2 on categorical columns")
        if self.n_clusters:
            needs.append("the cluster share test (chi-square; n_clusters=None turns it off)")
        if self._pred_kind is not None:
            needs.append("the predicted-class shift test (chi-square)")
        if needs:
            drift._scipy_special("DriftMonitor with " + ", ".join(needs))

    def _check_thresholds(self, thresholds: Any) -> dict:
        if thresholds is None:
            return {}
        if not isinstance(thresholds, Mapping):
            raise TypeError(f"thresholds must be a mapping test -> float, got {type(thresholds).__name__}")
        out = {}
        for k, v in thresholds.items():
            if k not in _NUMERIC_TESTS or _NUMERIC_TESTS[k][1]:
                raise ValueError(
                    f"thresholds keys must be distances {sorted(t for t, s in _NUMERIC_TESTS.items() if not s[1])}, got {k!r}"
                )
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                raise ValueError(f"thresholds[{k!r}] must be a finite number >= 0, got {v!r}")
            if k not in self.tests and k not in self.categorical_tests:
                # A threshold that no test uses would silently never decide anything.
                raise ValueError(
                    f"thresholds[{k!r}] is set but {k!r} is in neither tests {list(self.tests)} nor "
                    f"categorical_tests {list(self.categorical_tests)}; add it to tests"
                )
            out[k] = float(v)
        return out

    def _setup_array(self, reference: Any, columns: Any, embeddings: Any) -> None:
        a = self._array2d(reference, "reference")
        D = a.shape[1]
        if D == 0:
            # as for a Table without a monitored column: a monitor of nothing would report
            # "no drift" for every window
            raise ValueError(f"reference must have at least 1 column to monitor, got shape {tuple(a.shape)}")
        self._n_input_columns = D
        idx = self._indices(columns, D, "columns", allow_none=True)
        self._numeric_idx = idx
        self.numeric_columns = [str(j) for j in idx]
        self.categorical_columns: list[str] = []
        self._cat_names: list[str] = []
        if embeddings is None:
            self._emb_idx = None
            self._emb_standardise = True
        else:
            self._emb_idx = self._indices(embeddings, D, "embeddings", allow_none=False)
            self._emb_standardise = False

    @staticmethod
    def _indices(sel: Any, D: int, name: str, allow_none: bool) -> list:
        if sel is None:
            return list(range(D))
        if isinstance(sel, (int, np.integer)) and not isinstance(sel, bool):
            sel = [sel]
        out = []
        for j in sel:
            if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
                raise TypeError(f"{name} must hold column indices (int) for array input, got {j!r}")
            if not -D <= j < D:
                raise ValueError(f"{name} entries must be in [0, {D - 1}], got {j}")
            out.append(int(j) % D)
        if not out:
            raise ValueError(f"{name} must select at least one column, got an empty selection")
        if len(set(out)) != len(out):
            raise ValueError(f"{name} must not repeat a column, got {list(sel)}")
        return out

    @staticmethod
    def _array2d(x: Any, name: str) -> np.ndarray:
        a = _drift_input.columns(x, name)
        if a.dtype == np.bool_ or a.dtype.kind not in "fiu":
            raise TypeError(f"{name} must have a real numeric dtype, got {a.dtype}")
        return a

    def _setup_table(self, table: Any, columns: Any, embeddings: Any) -> None:
        schema = table.schema
        names = list(schema.names)
        if columns is None:
            chosen = names
        else:
            chosen = [columns] if isinstance(columns, str) else list(columns)
            for c in chosen:
                if c not in names:
                    raise ValueError(f"columns entry {c!r} is not a reference column; reference has {names}")
        emb_col = embeddings if isinstance(embeddings, str) else None
        self.numeric_columns, self.categorical_columns = [], []
        skipped = []
        for c in chosen:
            kind = _arrow_kind(schema.field(c).type)
            if c == emb_col and kind == "embedding":
                continue
            if kind == "numeric":
                self.numeric_columns.append(c)
            elif kind == "categorical":
                self.categorical_columns.append(c)
            elif columns is not None:
                raise TypeError(f"column {c!r} has type {schema.field(c).type}, which is not monitored (numeric, string, dictionary or bool)")
            else:
                skipped.append(c)
        if skipped:
            log.info("DriftMonitor: columns %s have types that are not monitored", skipped)
        if not self.numeric_columns and not self.categorical_columns:
            raise ValueError("reference has no numeric or categorical column to monitor")
        self._cat_names = self.categorical_columns
        self._emb_table_column = None
        self._emb_standardise = embeddings is None
        if emb_col is not None:
            if emb_col not in names:
                raise ValueError(f"embeddings column {emb_col!r} is not a reference column; reference has {names}")
            if _arrow_kind(schema.field(emb_col).type) == "embedding":
                self._emb_table_column = emb_col
                self._emb_names = None
            elif _arrow_kind(schema.field(emb_col).type) == "numeric":
                self._emb_names = [emb_col]
            else:
                raise TypeError(f"embeddings column {emb_col!r} must be numeric or a fixed-size list of numbers, got {schema.field(emb_col).type}")
        elif embeddings is None:
            self._emb_names = None
        else:
            self._emb_names = list(embeddings)
            for c in self._emb_names:
                if c not in names or _arrow_kind(schema.field(c).type) != "numeric":
                    raise ValueError(f"embeddings entry {c!r} must be a numeric reference column")

    def _extract(self, data: Any, name: str) -> _Sample:
        """Split reference or window data into the monitored parts (NaN policy applied)."""
        if self._tabular:
            if not _is_table(data):
                raise TypeError(f"{name} must be a pyarrow Table like the reference, got {type(data).__name__}")
            return self._extract_table(data, name)
        if _is_table(data):
            raise TypeError(f"{name} must be an array like the reference, got a pyarrow {type(data).__name__}")
        a = self._array2d(data, name)
        if a.shape[1] != self._n_input_columns:
            raise ValueError(f"{name} must have {self._n_input_columns} columns like the reference, got shape {tuple(a.shape)}")
        if self._numeric_idx == list(range(self._n_input_columns)):
            # no copy of a C-contiguous float64 window; the reference is always copied (the
            # monitor must not change when the caller reuses its array)
            num = np.array(a, dtype=np.float64, order="C") if name == "reference" else np.ascontiguousarray(a, dtype=np.float64)
        else:
            num = np.ascontiguousarray(a[:, self._numeric_idx], dtype=np.float64)
        nan_counts = np.isnan(num).sum(axis=0).astype(np.int64)
        self._nan_check(nan_counts, self.numeric_columns, name)
        if self._emb_idx is None:
            emb = num
        else:
            emb = np.asarray(a[:, self._emb_idx], dtype=np.float64)
        return _Sample(a.shape[0], num, nan_counts, [], emb, n_values=a.shape[0] - nan_counts)

    def _nan_check(self, nan_counts: np.ndarray, names: list, name: str) -> None:
        if self.nan_policy == "raise" and nan_counts.any():
            j = int(np.argmax(nan_counts > 0))
            raise ValueError(
                f"{name} column {names[j]!r} has {int(nan_counts[j])} NaN value(s); "
                "pass nan_policy='omit' to drop NaN values per column"
            )

    def _extract_table(self, t: Any, name: str) -> _Sample:
        n = t.num_rows
        present = set(t.schema.names)
        num = np.full((n, len(self.numeric_columns)), np.nan)
        nan_counts = np.zeros(len(self.numeric_columns), dtype=np.int64)
        for j, c in enumerate(self.numeric_columns):
            if c in present and _arrow_kind(t.schema.field(c).type) == "numeric":
                vals, nulls = _arrow_numeric(t.column(c))
                nan_counts[j] = int((np.isnan(vals) & ~nulls).sum())
                num[:, j] = vals
        self._nan_check(nan_counts, self.numeric_columns, name)
        cats = []
        for c in self.categorical_columns:
            if c in present and _arrow_kind(t.schema.field(c).type) == "categorical":
                cats.append(_arrow_labels(t.column(c)))
            else:
                cats.append(None)
        emb = None
        if self._emb_table_column is not None:
            if self._emb_table_column in present and _arrow_kind(t.schema.field(self._emb_table_column).type) == "embedding":
                emb = _arrow_embedding(t.column(self._emb_table_column), self._emb_table_column)
                ref = getattr(self, "_reference", None)
                if ref is not None and ref.embeddings is not None and emb.shape[1] != ref.embeddings.shape[1]:
                    # Another list size is a type change (reported as schema drift); the window
                    # cannot be assigned to the reference clusters, as if the column were gone.
                    emb = None
        elif self._emb_names is not None:
            # A named column that is gone or no longer numeric (a reported type change) leaves the
            # window unassignable, as the numeric tests leave it untested: casting it would parse
            # strings of digits as numbers, and fail with an Arrow error on any other string.
            if all(c in present and _arrow_kind(t.schema.field(c).type) == "numeric" for c in self._emb_names):
                emb = np.column_stack([_arrow_numeric(t.column(c))[0] for c in self._emb_names]) if n else np.zeros((0, len(self._emb_names)))
        elif self.numeric_columns:
            emb = num
        schema = {}
        for f in t.schema:
            col = t.column(f.name)
            schema[f.name] = (_logical_type(f.type), _arrow_kind(f.type), (col.null_count / n) if n else 0.0)
        return _Sample(n, num, nan_counts, cats, emb, schema, n_values=n - np.isnan(num).sum(axis=0))

    def _setup_clusters(self, n_clusters: Any, cluster_fit_rows: Any) -> None:
        self.cluster_fit_rows = _array.check_count(cluster_fit_rows, "cluster_fit_rows", allow_none=True, minimum=1)
        self._centroids = None
        self.n_clusters = 0
        if n_clusters is None or n_clusters == 0:
            return
        k = _array.check_count(n_clusters, "n_clusters", allow_none=False, minimum=0)
        emb = self._reference.embeddings
        if emb is None or emb.shape[1] == 0:
            log.info("DriftMonitor: no numeric embedding columns; cluster share shift disabled")
            return
        finite = np.isfinite(emb).all(axis=1)
        x = emb[finite]
        if self._emb_standardise:
            self._emb_mean = x.mean(axis=0) if x.shape[0] else np.zeros(emb.shape[1])
            sd = x.std(axis=0) if x.shape[0] else np.ones(emb.shape[1])
            self._emb_scale = np.where(sd > 0, sd, 1.0)
        else:
            self._emb_mean = np.zeros(emb.shape[1])
            self._emb_scale = np.ones(emb.shape[1])
        if k > x.shape[0]:
            raise ValueError(
                f"n_clusters must be <= {x.shape[0]} (reference rows with finite embeddings), got {k}; "
                "pass n_clusters=None to disable the cluster share shift"
            )
        if self.cluster_fit_rows is not None and k > self.cluster_fit_rows:
            raise ValueError(f"n_clusters must be <= cluster_fit_rows ({self.cluster_fit_rows}), got {k}")
        if self.cluster_fit_rows is not None and x.shape[0] > self.cluster_fit_rows:
            pick = np.sort(np.random.default_rng([self.seed, 2]).choice(x.shape[0], self.cluster_fit_rows, replace=False))
            x = x[pick]
        z = (x - self._emb_mean) / self._emb_scale
        km = kmeans(z, k, seed=self.seed)
        self._centroids = np.asarray(km.centroids, dtype=np.float64)
        # reference shares by the same assignment as the windows' (every finite reference row)
        self._ref_cluster_counts, _ = _cluster_counts(emb, self._emb_mean, self._emb_scale, self._centroids)
        self.n_clusters = k

    def _setup_predictions(self, predictions: Any) -> None:
        self._pred_kind = None
        if predictions is None:
            return
        _drift_input.check_unmasked(predictions, "predictions")
        p = _array._to_numpy_view(predictions, "predictions")
        if p.ndim == 1:
            if p.dtype.kind == "f":
                if not np.all(np.isfinite(p)) or not np.all(p == np.round(p)):
                    raise ValueError("predictions of shape (N,) must hold class labels (integers or strings), got non-integral floats")
                p = p.astype(np.int64)
            self._pred_kind = "labels"
            # copied, like the reference: the monitor must not change when the caller reuses its array
            self._ref_pred = np.array(p, copy=True)
        elif p.ndim == 2:
            self._pred_kind = "probabilities"
            self._ref_pred = np.array(self._probabilities(p, "predictions", None), copy=True)
        else:
            raise ValueError(f"predictions must have shape (N,) or (N, C), got {tuple(p.shape)}")
        if p.shape[0] < 1:
            raise ValueError("predictions must have at least 1 row, got 0")

    @staticmethod
    def _probabilities(p: np.ndarray, name: str, C: int | None) -> np.ndarray:
        if p.dtype == np.bool_ or p.dtype.kind not in "fiu":
            raise TypeError(f"{name} probabilities must be numeric, got dtype {p.dtype}")
        if C is not None and p.shape[1] != C:
            raise ValueError(f"{name} must have shape (M, {C}) like the reference predictions, got {tuple(p.shape)}")
        p = np.asarray(p, dtype=np.float64)
        if not np.isfinite(p).all():
            raise ValueError(f"{name} must be finite, got NaN or infinity")
        if p.shape[1] < 2:
            raise ValueError(f"{name} probabilities must have at least 2 classes, got shape {tuple(p.shape)}")
        return p

    # ------------------------------------------------------------------ callbacks
    def on_alert(self, callback: Callable[[DriftReport], Any]) -> Callable[[DriftReport], Any]:
        """Register ``callback(report)``, called after every check whose dataset decision is drift.

        Callbacks run in registration order, synchronously inside :meth:`check`, after the report
        is recorded in the history. An exception raised by a callback is logged (logger
        ``curata.monitor``, with traceback) and does not stop the other callbacks nor lose the
        report: :meth:`check` still returns it.

        Parameters
        ----------
        callback : callable
            ``callback(report: DriftReport)``; its return value is ignored.

        Returns
        -------
        callable
            ``callback`` itself, so this works as a decorator. O(1); the monitor keeps a
            reference to it.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._callbacks.append(callback)
        return callback

    # ------------------------------------------------------------------ check
    def check(self, window: Any, timestamp: Any = None, predictions: Any = None) -> DriftReport:
        """Compare one window of production data with the reference.

        Parameters
        ----------
        window : array (M, D) / (M,), torch tensor, or pyarrow Table
            Same kind and columns as the reference. An array with a different number of columns
            raises ValueError; a Table whose schema differs is tested on the columns it still has
            and the difference is reported in :attr:`DriftReport.schema`.
        timestamp : datetime, ISO 8601 string, POSIX seconds or None
            Time of the window (default: now, UTC). Naive datetimes (and strings without an
            offset) are taken as UTC.
        predictions : array (M,) or (M, C), optional
            Window predictions, the same form as the reference ``predictions`` (required to get
            :attr:`DriftReport.classes`; a ValueError if the monitor has none). The class test is
            its own two-sample test, so ``M`` need not equal the window's row count (e.g. the
            model's outputs on a different sample of the same period).

        Returns
        -------
        DriftReport

        Raises
        ------
        ValueError
            NaN with ``nan_policy="raise"``, wrong number of columns, predictions of the wrong
            shape or without reference predictions.
        TypeError
            A window of another kind than the reference.

        Notes
        -----
        A window with fewer than ``min_rows`` rows (e.g. empty) is not an error: the report has
        status ``"insufficient data"``, no test results, ``drift=False`` (unless a Table window's
        schema changed: columns added, removed or re-typed), and is recorded in the history.

        Cost: each monitored column of the window is sorted once for all sort-based tests and
        walked against the presorted reference, O(M log M + N + M) per column (binned tests
        bin the column on their own), plus O(M k E) for the cluster assignment and a NaN count
        of the window. Memory beyond the window: a float64 copy of its monitored columns when
        they are not float64 already (8 M D bytes), per-thread sort keys, and the cluster
        distances in blocks of at most 2**22 (k, rows) float64 entries (32 MiB, plus numpy's
        transposed copy of the block for the argmin); nothing N x M. Statistics and p-values
        are float64 (see :class:`DriftReport`).
        """
        ts = _timestamp(timestamp)
        cur = self._extract(window, "window")
        if predictions is not None and self._pred_kind is None:
            raise ValueError("predictions were given to check() but the monitor has no reference predictions")
        # A window below min_rows is not tested, and its null rates are not either (two rows, one
        # null: a "jump" to 50 % that is noise); columns added, removed or re-typed still count.
        schema = self._schema_drift(cur, null_rates=cur.n_rows >= self.min_rows) if self._tabular else None
        if cur.n_rows < self.min_rows:
            # nothing is tested; a schema change is still a finding
            schema_drift = schema is not None and schema.changed
            report = DriftReport(
                timestamp=ts, n_rows=cur.n_rows, n_reference=self._reference.n_rows, status=INSUFFICIENT,
                drift=schema_drift, feature_drift=False, cluster_drift=False, class_drift=False,
                schema_drift=schema_drift, alpha=self.alpha, correction=self.correction, n_tests=0, schema=schema,
            )
            return self._record(report)

        raw = self._column_tests(cur, schema)
        cluster_raw = self._cluster_test(cur)
        class_raw = self._class_test(predictions)

        # one family: every p-value of the check
        family = [r["pvalue"] for r in raw if r["has_p"]]
        if cluster_raw is not None:
            family.append(cluster_raw["pvalue"])
        if class_raw is not None:
            family.append(class_raw["pvalue"])
            family.extend(b["pvalue"] for b in class_raw["bbsd"])
        if family:
            corr = drift.correct(np.asarray(family, dtype=np.float64), self.correction, self.alpha)
            adjusted = list(corr.adjusted)
        else:
            adjusted = []
        pos = 0
        results = []
        for r in raw:
            adj = math.nan
            if r["has_p"]:
                adj = float(adjusted[pos])
                pos += 1
            results.append(self._column_test(r, adj))
        clusters = classes = None
        if cluster_raw is not None:
            adj = float(adjusted[pos])
            pos += 1
            clusters = ClusterShift(adjusted_pvalue=adj, drift=bool(adj <= self.alpha), **cluster_raw)
        if class_raw is not None:
            adj = float(adjusted[pos])
            pos += 1
            bbsd = None
            if class_raw["bbsd"]:
                bbsd = []
                for b in class_raw["bbsd"]:
                    bbsd.append(self._column_test(b, float(adjusted[pos])))
                    pos += 1
            fields = {k: v for k, v in class_raw.items() if k != "bbsd"}
            class_drift = bool(adj <= self.alpha) or any(b.drift for b in bbsd or [])
            classes = ClassShift(adjusted_pvalue=adj, drift=class_drift, bbsd=bbsd, **fields)

        feature_drift = any(r.drift for r in results)
        cluster_drift = clusters is not None and clusters.drift
        class_drift = classes is not None and classes.drift
        schema_drift = schema is not None and schema.changed
        nan_counts = {}
        for j, c in enumerate(self.numeric_columns):
            if cur.nan_counts[j]:
                nan_counts[c] = int(cur.nan_counts[j])
        report = DriftReport(
            timestamp=ts,
            n_rows=cur.n_rows,
            n_reference=self._reference.n_rows,
            status="ok",
            drift=bool(feature_drift or cluster_drift or class_drift or schema_drift),
            feature_drift=bool(feature_drift),
            cluster_drift=bool(cluster_drift),
            class_drift=bool(class_drift),
            schema_drift=bool(schema_drift),
            alpha=self.alpha,
            correction=self.correction,
            n_tests=len(family),
            results=results,
            top_columns=self._rank(results),
            clusters=clusters,
            classes=classes,
            schema=schema,
            nan_counts=nan_counts,
        )
        return self._record(report)

    def _column_test(self, r: dict, adjusted: float) -> ColumnTest:
        threshold = None if r["has_p"] else self.thresholds.get(r["test"])
        if r["status"] != "ok":
            decision = False
        elif r["has_p"]:
            decision = bool(adjusted <= self.alpha)
        else:
            decision = threshold is not None and bool(r["statistic"] > threshold)
        return ColumnTest(
            column=r["column"], test=r["test"], kind=r["kind"], statistic=float(r["statistic"]),
            pvalue=float(r["pvalue"]), adjusted_pvalue=adjusted, threshold=threshold, drift=decision,
            n_ref=int(r["n_ref"]), n_cur=int(r["n_cur"]), nan_ref=int(r["nan_ref"]), nan_cur=int(r["nan_cur"]),
            status=r["status"],
        )

    def _testable_numeric(self, cur: _Sample, schema: SchemaDrift | None) -> np.ndarray:
        ok = np.ones(len(self.numeric_columns), dtype=bool)
        if schema is not None:
            for j, c in enumerate(self.numeric_columns):
                if c in schema.removed or (c in schema.type_changed and cur.schema[c][1] != "numeric"):
                    ok[j] = False
        return ok

    def _column_tests(self, cur: _Sample, schema: SchemaDrift | None) -> list:
        """Raw per-(test, column) results as dicts, tests in order, columns in order."""
        out = []
        ref = self._reference
        present = self._testable_numeric(cur, schema)
        n_ref = ref.n_values
        n_cur = cur.n_values
        # the columns each numeric test can run on
        masks = {}
        no_inf = None  # columns without +-inf in either sample: quantile bins need finite values
        for test in self.tests:
            need = _NUMERIC_TESTS[test][2]
            ok = present & (n_ref >= need) & (n_cur >= need)
            if test in _BINNED:
                if no_inf is None:
                    if self._ref_no_inf is None:  # the reference never changes: once per monitor
                        self._ref_no_inf = ~np.isinf(ref.numeric).any(axis=0)
                    no_inf = self._ref_no_inf & ~np.isinf(cur.numeric).any(axis=0)
                ok &= no_inf
            masks[test] = ok
        # Sort-based tests on the same columns share one sort per column (drift.column_tests:
        # the same summaries and p-value code as the single-test functions, so the same numbers).
        groups: dict = {}
        for test in self.tests:
            if test in _SORTED and masks[test].any():
                groups.setdefault(masks[test].tobytes(), []).append(test)
        results = {}
        for tests in groups.values():
            idx = np.flatnonzero(masks[tests[0]])
            results.update(self._sorted_tests(tests, idx, cur))
        for test in self.tests:
            fn, has_p, need = _NUMERIC_TESTS[test]
            ok = masks[test]
            idx = np.flatnonzero(ok)
            res = results.get(test)
            if res is None and idx.size:
                kwargs = {"nan_policy": "omit", "input": "values", "n_bins": self.n_bins}
                if idx.size == ok.size:  # every column: no gathered copies of the samples
                    res = fn(ref.numeric, cur.numeric, **kwargs)
                else:
                    res = fn(ref.numeric[:, idx], cur.numeric[:, idx], **kwargs)
            where = {int(j): i for i, j in enumerate(idx)}
            if res is not None:
                stat = np.asarray(res.statistic)
                pval = np.asarray(res.pvalue) if has_p else None
            for j, c in enumerate(self.numeric_columns):
                if j in where:
                    i = where[j]
                    out.append({
                        "column": c, "test": test, "kind": "numeric", "has_p": has_p, "status": "ok",
                        "statistic": float(stat[i]),
                        "pvalue": float(pval[i]) if has_p else math.nan,
                        "n_ref": res.n_ref[i], "n_cur": res.n_cur[i],
                        "nan_ref": ref.nan_counts[j], "nan_cur": cur.nan_counts[j],
                    })
                else:
                    out.append(self._untested(c, test, "numeric", has_p, n_ref[j] if present[j] else 0,
                                              n_cur[j] if present[j] else 0, ref.nan_counts[j], cur.nan_counts[j],
                                              INSUFFICIENT if present[j] else MISSING))
        for test in self.categorical_tests:
            fn, has_p, need = _NUMERIC_TESTS[test]
            for j, c in enumerate(self.categorical_columns):
                x, y = ref.categorical[j], cur.categorical[j]
                if y is None or (x.dtype.kind == "b") != (y.dtype.kind == "b"):
                    out.append(self._untested(c, test, "categorical", has_p, x.size, 0, 0, 0, MISSING))
                    continue
                if x.size < need or y.size < need:
                    out.append(self._untested(c, test, "categorical", has_p, x.size, y.size, 0, 0, INSUFFICIENT))
                    continue
                res = fn(x, y, input="labels")
                out.append({
                    "column": c, "test": test, "kind": "categorical", "has_p": has_p, "status": "ok",
                    "statistic": float(np.asarray(res.statistic)[0]),
                    "pvalue": float(np.asarray(res.pvalue)[0]) if has_p else math.nan,
                    "n_ref": x.size, "n_cur": y.size, "nan_ref": 0, "nan_cur": 0,
                })
        return out

    def _sorted_tests(self, tests: list, idx: np.ndarray, cur: _Sample) -> dict:
        """drift.column_tests of ``tests`` on the numeric columns ``idx`` (test -> result)."""
        # the reference was sorted once at construction: only the window is sorted here, and the
        # merged walk over the same sorted keys gives what drift.column_tests gives, bit for bit
        if idx.size == self._reference.numeric.shape[1]:  # every column: no gathered copies
            return self._ref_sorted.column_tests(cur.numeric, tests, nan_policy="omit")
        return self._ref_sorted.column_tests(cur.numeric[:, idx], tests, columns=idx, nan_policy="omit")

    @staticmethod
    def _untested(column, test, kind, has_p, n_ref, n_cur, nan_ref, nan_cur, status) -> dict:
        return {
            "column": column, "test": test, "kind": kind, "has_p": has_p, "status": status,
            "statistic": math.nan, "pvalue": math.nan, "n_ref": n_ref, "n_cur": n_cur,
            "nan_ref": nan_ref, "nan_cur": nan_cur,
        }

    def _rank(self, results: list) -> list:
        """Drifting columns by (smallest adjusted p, -statistic of that test, column order)."""
        order = {c: i for i, c in enumerate(self.numeric_columns + self.categorical_columns)}
        best: dict = {}
        for r in results:
            if not r.drift:
                continue
            p = r.adjusted_pvalue if math.isfinite(r.adjusted_pvalue) else math.inf
            score = r.statistic if r.threshold is None else r.statistic / max(r.threshold, 1e-300)
            key = (p, -score, order.get(r.column, len(order)))
            if r.column not in best or key < best[r.column]:
                best[r.column] = key
        ranked = sorted(best, key=lambda c: best[c])
        return ranked[: self.top_k]

    def _cluster_test(self, cur: _Sample) -> dict | None:
        if self._centroids is None:
            return None
        k = self.n_clusters
        emb = cur.embeddings
        if emb is None:
            counts = np.zeros(k, dtype=np.int64)
            skipped = cur.n_rows
        else:
            counts, skipped = _cluster_counts(emb, self._emb_mean, self._emb_scale, self._centroids)
        ref_counts = self._ref_cluster_counts
        ref_share = ref_counts / ref_counts.sum()
        total = counts.sum()
        cur_share = counts / total if total else np.zeros(k)
        if total:
            t = drift.chi2(ref_counts, counts, input="counts")
            stat, p = float(np.asarray(t.statistic)[0]), float(np.asarray(t.pvalue)[0])
        else:
            stat, p = math.nan, math.nan
        return {
            "ref_counts": ref_counts.copy(), "cur_counts": counts, "ref_share": ref_share, "cur_share": cur_share,
            "share_diff": cur_share - ref_share, "statistic": stat, "pvalue": p, "n_skipped": skipped,
        }

    def _class_test(self, predictions: Any) -> dict | None:
        if self._pred_kind is None or predictions is None:
            return None
        _drift_input.check_unmasked(predictions, "predictions")
        p = _array._to_numpy_view(predictions, "predictions")
        bbsd = []
        if self._pred_kind == "labels":
            if p.ndim != 1:
                raise ValueError(f"predictions must have shape (M,) like the reference predictions (class labels), got {tuple(p.shape)}")
            if p.dtype.kind == "f":
                if not np.all(np.isfinite(p)) or not np.all(p == np.round(p)):
                    raise ValueError("predictions must hold class labels, got non-integral floats")
                p = p.astype(np.int64)
            ref = self._ref_pred
            if (ref.dtype.kind in "iub") != (p.dtype.kind in "iub"):
                raise TypeError(f"predictions must hold labels of the reference predictions' type, got dtype {p.dtype} vs {ref.dtype}")
            try:
                classes, inverse = np.unique(np.concatenate([ref, p]), return_inverse=True)
            except TypeError:
                raise TypeError(f"predictions must hold labels of the reference's type, got dtype {p.dtype} vs {ref.dtype}") from None
            ref_counts = np.bincount(inverse[: ref.size], minlength=classes.size)
            cur_counts = np.bincount(inverse[ref.size :], minlength=classes.size)
        else:
            if p.ndim != 2:
                raise ValueError(f"predictions must have shape (M, {self._ref_pred.shape[1]}) like the reference predictions (probabilities), got {tuple(p.shape)}")
            C = self._ref_pred.shape[1]
            p = self._probabilities(p, "predictions", C)
            classes = np.arange(C)
            ref_counts = np.bincount(np.argmax(self._ref_pred, axis=1), minlength=C)
            cur_counts = np.bincount(np.argmax(p, axis=1), minlength=C) if p.shape[0] else np.zeros(C, np.int64)
            if p.shape[0]:
                t = drift.ks(self._ref_pred, p)
                for c in range(C):
                    bbsd.append({
                        "column": f"class {c}", "test": "ks", "kind": "numeric", "has_p": True, "status": "ok",
                        "statistic": float(t.statistic[c]), "pvalue": float(t.pvalue[c]),
                        "n_ref": self._ref_pred.shape[0], "n_cur": p.shape[0], "nan_ref": 0, "nan_cur": 0,
                    })
        ref_counts = ref_counts.astype(np.int64)
        cur_counts = cur_counts.astype(np.int64)
        ref_share = ref_counts / ref_counts.sum()
        total = cur_counts.sum()
        cur_share = cur_counts / total if total else np.zeros(classes.size)
        if total:
            t = drift.chi2(ref_counts, cur_counts, input="counts")
            stat, pv = float(np.asarray(t.statistic)[0]), float(np.asarray(t.pvalue)[0])
        else:
            stat, pv = math.nan, math.nan
        return {
            "classes": classes, "ref_counts": ref_counts, "cur_counts": cur_counts, "ref_share": ref_share,
            "cur_share": cur_share, "share_diff": cur_share - ref_share, "statistic": stat, "pvalue": pv,
            "bbsd": bbsd,
        }

    def _schema_drift(self, cur: _Sample, null_rates: bool = True) -> SchemaDrift:
        ref = self._reference.schema
        got = cur.schema
        monitored = self.numeric_columns + self.categorical_columns
        extra = [c for c in (self._emb_names or []) + ([self._emb_table_column] if self._emb_table_column else []) if c not in monitored]
        watched = monitored + extra
        added = [c for c in got if c not in ref]
        removed = [c for c in watched if c not in got]
        type_changed = {}
        null_rate = {}
        for c in watched:
            if c not in got:
                continue
            if ref[c][0] != got[c][0]:
                type_changed[c] = (ref[c][0], got[c][0])
            if null_rates and cur.n_rows and abs(got[c][2] - ref[c][2]) > self.null_rate_threshold:
                null_rate[c] = (ref[c][2], got[c][2])
        return SchemaDrift(added=added, removed=removed, type_changed=type_changed, null_rate=null_rate)

    def _record(self, report: DriftReport) -> DriftReport:
        self.last_report = report
        if report.status == "ok":
            self._last_tested = report
        self._history.append(_history_row(report))
        if report.drift:
            for cb in list(self._callbacks):
                try:
                    cb(report)
                except Exception:  # noqa: BLE001  (a failing callback must not lose the report)
                    log.exception("DriftMonitor: alert callback %r raised; the report is kept", cb)
        return report

    # ------------------------------------------------------------------ history
    @property
    def history_rows(self) -> list:
        """The history as a list of dicts (no pyarrow needed); see :attr:`history`. Copies: changing
        them (``top_columns`` lists included) does not change the monitor's history."""
        return [{k: list(v) if isinstance(v, list) else v for k, v in r.items()} for r in self._history]

    @property
    def history(self) -> Any:
        """One row per check as a ``pyarrow.Table`` (needs pyarrow).

        Columns: ``timestamp`` (timestamp[us, UTC]), ``n_rows`` (int64), ``status`` (string),
        ``drift``, ``feature_drift``, ``cluster_drift``, ``class_drift``, ``schema_drift``
        (bool), ``min_pvalue``, ``min_adjusted_pvalue`` (float64, null when no p-value),
        ``n_tests``, ``n_drifting_columns`` (int64), ``top_columns`` (list<string>),
        ``cluster_pvalue``, ``class_pvalue`` (float64 adjusted p-values, null when not computed).
        """
        pa = _pyarrow()
        rows = self._history
        schema = pa.schema([
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("n_rows", pa.int64()),
            ("status", pa.string()),
            ("drift", pa.bool_()),
            ("feature_drift", pa.bool_()),
            ("cluster_drift", pa.bool_()),
            ("class_drift", pa.bool_()),
            ("schema_drift", pa.bool_()),
            ("min_pvalue", pa.float64()),
            ("min_adjusted_pvalue", pa.float64()),
            ("n_tests", pa.int64()),
            ("n_drifting_columns", pa.int64()),
            ("top_columns", pa.list_(pa.string())),
            ("cluster_pvalue", pa.float64()),
            ("class_pvalue", pa.float64()),
        ])
        cols = {}
        for f in schema:
            vals = [r[f.name] for r in rows]
            if pa.types.is_floating(f.type):
                vals = [None if v is None or not math.isfinite(v) else v for v in vals]
            if f.name == "timestamp":
                vals = [v.astimezone(_dt.timezone.utc) for v in vals]
            cols[f.name] = pa.array(vals, type=f.type)
        return pa.Table.from_pydict(cols, schema=schema)

    # ------------------------------------------------------------------ html
    def to_html(self, path: Any, *, top_n: int = 20, title: str = "curata drift report") -> str:
        """Write a self-contained HTML report of the history and the latest check.

        The page holds no script, no external stylesheet and no link: inline SVG plots drawn
        here (``-log10`` of each check's smallest adjusted p-value over time with the
        ``-log10(alpha)`` line; the statistic of the first numeric test, and of the first
        categorical test, per column of the latest tested window, top ``top_n``, drifting
        columns highlighted; reference vs window share per cluster and per predicted class) and
        tables (the last 50 checks, per-column results of the ``top_n`` most significant
        columns, cluster and class shares, schema drift). All text is HTML-escaped. The
        file is written to a temporary file in the same folder and moved over ``path`` with
        ``os.replace`` (atomic on POSIX), so a reader never sees a half-written report.

        Parameters
        ----------
        path : str or os.PathLike
        top_n : int
            Columns in the per-column bar plot and table.
        title : str

        Returns
        -------
        str : the path written.

        Notes
        -----
        O(H + R) time for H checks in the history and R results of the latest tested window;
        the page (~8 KB plus ~0.3 KB per history row and per shown column) is built in
        memory before it is written.
        """
        top_n = _array.check_count(top_n, "top_n", allow_none=False, minimum=1)
        doc = report.drift_html(self, top_n, str(title))
        path = os.fspath(path)
        return _io.atomic_write(path, lambda fh: fh.write(doc), text=True)

    # ------------------------------------------------------------------ skew
    @staticmethod
    def skew(training: Any, serving: Any, *, key: str | None = None, **kwargs: Any) -> "SkewReport":
        """Training/serving skew; the same as :func:`curata.monitor.skew`."""
        return skew(training, serving, key=key, **kwargs)

    def __repr__(self) -> str:
        return (
            f"DriftMonitor({self._reference.n_rows} reference rows, numeric={len(self.numeric_columns)}, "
            f"categorical={len(self.categorical_columns)}, tests={self.tests}, n_clusters={self.n_clusters}, "
            f"checks={len(self._history)})"
        )


# rows per block of the window's cluster assignment: the (k, rows) distance block holds at most
# 2**22 entries (32 MiB)
_ASSIGN_ENTRIES = 1 << 22


def _cluster_counts(emb: np.ndarray, mean: np.ndarray, scale: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows per nearest centroid (lowest index on ties) of the standardised rows
    ``z = (x - mean) / scale``, and the number of rows skipped because a value is NaN or
    infinite.

    The standardisation is folded into the centroids, ``|z - c|^2 = |z|^2 - 2 x.(c / scale) +
    2 mean.(c / scale) + |c|^2``, so the window is read once by one matrix product and never
    copied. ``(k, E) x (E, rows)`` rather than ``(rows, E) x (E, k)``: OpenBLAS runs the former
    ~4x faster for small k. A row with a non-finite value has non-finite products with every
    centroid and is skipped there (so is a finite row whose products overflow, |x| > ~1e150)."""
    k = c.shape[0]
    cs = c / scale  # (k, E)
    bias = (2.0 * (cs @ mean) + np.einsum("ij,ij->i", c, c))[:, None]
    counts = np.zeros(k, dtype=np.int64)
    skipped = 0
    rows = max(1, _ASSIGN_ENTRIES // max(k, 1))
    for s in range(0, emb.shape[0], rows):
        d = cs @ emb[s : s + rows].T
        d *= -2.0
        d += bias
        ok = np.isfinite(d).all(axis=0)
        if not ok.all():
            skipped += int((~ok).sum())
            d = d[:, ok]
        counts += np.bincount(np.argmin(d, axis=0), minlength=k)
    return counts, skipped


def _history_row(r: DriftReport) -> dict:
    return {
        "timestamp": r.timestamp,
        "n_rows": r.n_rows,
        "status": r.status,
        "drift": r.drift,
        "feature_drift": r.feature_drift,
        "cluster_drift": r.cluster_drift,
        "class_drift": r.class_drift,
        "schema_drift": r.schema_drift,
        "min_pvalue": r.min_pvalue,
        "min_adjusted_pvalue": r.min_adjusted_pvalue,
        "n_tests": r.n_tests,
        "n_drifting_columns": len(r.drifting_columns),
        "top_columns": list(r.top_columns),
        "cluster_pvalue": r.clusters.adjusted_pvalue if r.clusters is not None else None,
        "class_pvalue": r.classes.adjusted_pvalue if r.classes is not None else None,
    }


# ---------------------------------------------------------------------------------- skew
@dataclass(frozen=True)
class SkewReport:
    """Training/serving skew of the same features (:func:`skew`).

    Attributes
    ----------
    distribution : DriftReport
        The serving table checked against the training table as a window against a reference
        (per-feature tests, correction, schema drift; no clustering).
    key : str or None
    n_training, n_serving : int
        Rows of each table.
    n_joined, n_training_only, n_serving_only : int or None
        With ``key``: rows whose key is in both tables, only in training, only in serving.
    mismatch_count : dict str -> int
        With ``key``: per feature, joined rows whose values differ (numbers: not within
        ``rtol``/``atol``; categories: not equal; a missing value (null or NaN) equals only a
        missing value).
    mismatch_rate : dict str -> float
        ``mismatch_count / n_joined`` (NaN when nothing joined).
    skewed_columns : list of str
        Features that drift in distribution (``distribution.results``) or whose mismatch rate
        exceeds ``max_mismatch_rate``; distribution-drifting ones first in their rank order.
    """

    distribution: DriftReport
    key: str | None
    n_training: int
    n_serving: int
    n_joined: int | None = None
    n_training_only: int | None = None
    n_serving_only: int | None = None
    mismatch_count: dict = field(default_factory=dict)
    mismatch_rate: dict = field(default_factory=dict)
    skewed_columns: list = field(default_factory=list)

    @property
    def skewed(self) -> bool:
        """Any skewed column or a schema difference."""
        return bool(self.skewed_columns) or bool(self.distribution.schema_drift)


def _key_values(t: Any, key: str, name: str) -> np.ndarray:
    if key not in t.schema.names:
        raise ValueError(f"key {key!r} is not a column of {name}; it has {list(t.schema.names)}")
    col = t.column(key).combine_chunks()
    pa = _pyarrow()
    if col.null_count:
        raise ValueError(f"{name} key column {key!r} has {col.null_count} null value(s)")
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_integer(col.type):
        v = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        v = np.asarray(col.to_pylist(), dtype=object).astype(str)
    else:
        raise TypeError(f"key column {key!r} must be integer or string, got {col.type}")
    uniq, counts = np.unique(v, return_counts=True)
    if uniq.size != v.size:
        dup = uniq[np.argmax(counts > 1)]
        raise ValueError(f"{name} key column {key!r} must be unique, got {int(v.size - uniq.size)} duplicate(s) (e.g. {dup!r})")
    return v


def skew(
    training: Any,
    serving: Any,
    *,
    key: str | None = None,
    columns: Sequence[Any] | None = None,
    tests: Sequence[str] = ("ks",),
    categorical_tests: Sequence[str] = ("chi2", "psi"),
    alpha: float = 0.05,
    correction: str = "fdr",
    thresholds: Mapping[str, float] | None = None,
    nan_policy: str = "raise",
    rtol: float = 1e-6,
    atol: float = 0.0,
    max_mismatch_rate: float = 0.0,
) -> SkewReport:
    """Training/serving skew: compare the same features as logged at training and at serving.

    Two views of skew:

    * distribution: every feature of ``serving`` is tested against the same feature of
      ``training`` (a :class:`DriftMonitor` built on ``training`` without clustering checks
      ``serving``): per-feature statistics, corrected decisions, schema differences;
    * per row (with ``key``, Tables only): rows are joined on the key (unique in each table) and,
      per feature, the share of joined rows whose training and serving values differ is
      reported. This catches a feature computed differently at serving time even when its
      distribution looks the same (e.g. a unit change on some rows, a stale lookup).

    Parameters
    ----------
    training, serving : arrays (N, D) / (M, D) or pyarrow Tables
        Same kind. Tables are matched by column name.
    key : str, optional
        Join key column (integer or string, no nulls, unique in each table). Excluded from the
        features.
    columns : sequence, optional
        Features to compare (default: every monitored column except ``key``).
    tests, categorical_tests, alpha, correction, thresholds, nan_policy
        As :class:`DriftMonitor`.
    rtol, atol : float
        Numeric values match when ``|t - s| <= atol + rtol * |s|`` (``numpy.isclose``); the
        default rtol 1e-6 tolerates float32 round trips.
    max_mismatch_rate : float
        A feature whose mismatch rate is above this is skewed (default 0: any mismatch).

    Returns
    -------
    SkewReport

    Notes
    -----
    Cost of building a :class:`DriftMonitor` on ``training`` (no clustering) and one
    :meth:`DriftMonitor.check` of ``serving`` (time and memory as documented there: float64
    copies of the monitored columns and their sort keys), plus, with ``key``, an
    O((N + M) log(N + M)) sort of the keys and O(n_joined) per feature (categorical features are
    compared as Python objects), holding the joined columns of one feature at a time.
    """
    max_mismatch_rate = _array.check_probability(max_mismatch_rate, "max_mismatch_rate")
    for v, nm in ((rtol, "rtol"), (atol, "atol")):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{nm} must be a finite number >= 0, got {v!r}")
    if key is not None and not (_is_table(training) and _is_table(serving)):
        raise TypeError("key needs pyarrow Tables for training and serving")
    if key is not None and columns is None:
        # "Every monitored column except key": types DriftMonitor does not monitor (e.g. an
        # embedding list column) are left out here as it leaves them out, not an error.
        columns = [c for c in training.schema.names
                   if c != key and _arrow_kind(training.schema.field(c).type) in ("numeric", "categorical")]
    elif key is not None and key in ([columns] if isinstance(columns, str) else list(columns)):
        raise ValueError(f"columns must not include the key {key!r}")
    mon = DriftMonitor(
        training, tests=tests, categorical_tests=categorical_tests, alpha=alpha, correction=correction,
        thresholds=thresholds, columns=columns, n_clusters=None, nan_policy=nan_policy,
    )
    report = mon.check(serving)
    n_training = mon._reference.n_rows
    n_serving = report.n_rows
    skewed = list(report.top_columns) + [c for c in report.drifting_columns if c not in report.top_columns]
    if key is None:
        return SkewReport(distribution=report, key=None, n_training=n_training, n_serving=n_serving, skewed_columns=skewed)

    kt = _key_values(training, key, "training")
    ks_ = _key_values(serving, key, "serving")
    if kt.dtype.kind != ks_.dtype.kind:
        raise TypeError(f"key column {key!r} must have the same type in both tables, got {training.schema.field(key).type} and {serving.schema.field(key).type}")
    _, it, is_ = np.intersect1d(kt, ks_, assume_unique=True, return_indices=True)
    n_joined = int(it.size)
    counts, rates = {}, {}
    for c in mon.numeric_columns + mon.categorical_columns:
        if c not in serving.schema.names:
            continue
        kt_kind = _arrow_kind(training.schema.field(c).type)
        ks_kind = _arrow_kind(serving.schema.field(c).type)
        if kt_kind != ks_kind:
            continue
        if kt_kind == "numeric":
            a = _arrow_numeric(training.column(c))[0][it]
            b = _arrow_numeric(serving.column(c))[0][is_]
            ma, mb = np.isnan(a), np.isnan(b)
            with np.errstate(invalid="ignore"):
                close = np.isclose(a, b, rtol=rtol, atol=atol)
            equal = (ma & mb) | (~ma & ~mb & close)
        else:
            def values(t, idx):
                col = t.column(c).combine_chunks()
                if _pyarrow().types.is_dictionary(col.type):
                    col = col.dictionary_decode()
                return col.take(_pyarrow().array(idx)).to_pylist()
            a, b = values(training, it), values(serving, is_)
            equal = np.fromiter((x == y for x, y in zip(a, b)), dtype=bool, count=n_joined)
        counts[c] = int(n_joined - equal.sum())
        rates[c] = counts[c] / n_joined if n_joined else math.nan
        if n_joined and rates[c] > max_mismatch_rate and c not in skewed:
            skewed.append(c)
    return SkewReport(
        distribution=report, key=key, n_training=n_training, n_serving=n_serving, n_joined=n_joined,
        n_training_only=int(kt.size - n_joined), n_serving_only=int(ks_.size - n_joined),
        mismatch_count=counts, mismatch_rate=rates, skewed_columns=skewed,
    )
