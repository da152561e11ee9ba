"""Siting answers summarised per grid, community or any demand attribute."""

from __future__ import annotations

import pandas as pd

from gis.errors import InputError
from gis.siting.result import SitingResult


def coverage_by(result: SitingResult, demand: pd.DataFrame, *, by: str) -> pd.DataFrame:
    """Demand covered before and after the answer, per value of ``demand[by]``.

    Parameters
    ----------
    result : SitingResult
        A solved model whose demand rows are, in order, the rows of ``demand``.
    demand : DataFrame or GeoDataFrame
        The demand table the model was built from (e.g. from
        :func:`gis.siting.demand.stairwell_demand`).
    by : str
        Grouping column, e.g. ``"grid_id"`` or ``"community_id"``; missing values form
        their own group.

    Returns
    -------
    DataFrame
        Indexed by ``by``: ``demand``, ``covered_before``, ``covered_after``, ``gain``,
        ``share_before``, ``share_after`` (weighted demand; shares in 0..1).

    Raises
    ------
    InputError
        ``by`` is not a column, the row counts differ, or the result has no coverage
        (a p-median solved without ``service_radius``).
    """
    if by not in demand.columns:
        raise InputError("by", f"column {by!r} not in the demand table")
    before, after = result.demand_covered_before, result.demand_covered_after
    if before is None or after is None:
        raise InputError("result", "has no coverage figures (p-median without service_radius)")
    if len(demand) != before.shape[0]:
        msg = f"has {len(demand)} rows but the result covers {before.shape[0]} demand points"
        raise InputError("demand", msg)
    table = pd.DataFrame(
        {
            "key": demand[by].to_numpy(),
            "demand": result.weights,
            "covered_before": before,
            "covered_after": after,
        }
    )
    grouped = table.groupby("key", dropna=False)[["demand", "covered_before", "covered_after"]]
    out = grouped.sum()
    out.index.name = by
    out["gain"] = out["covered_after"] - out["covered_before"]
    total = out["demand"].where(out["demand"] > 0)
    out["share_before"] = (out["covered_before"] / total).fillna(0.0)
    out["share_after"] = (out["covered_after"] / total).fillna(0.0)
    return out
