// Points a live `metrics` event carries, appended to the series a run page shows (the columnar
// series of /api/v2/compare with one id), so an open chart grows without fetching every curve.

/**
 * Appends ``event.points`` to ``shown`` (compare's answer for run ``id``). Returns false when the
 * page must refetch instead: the event carries no points (too many, or the run was read whole),
 * a step arrives that is not past the series' last one (logged again, or out of order), or a
 * series has grown well past what its chart was asked to draw (``budget``: downsample again).
 */
export function appendPoints(shown, id, event, budget) {
  if (!shown || !event.points || event.refetch) return false;
  for (const [name, cols] of Object.entries(event.points)) {
    const s = shown.series[name]?.[id];
    if (!s) continue;
    if (cols.steps.length && s.steps.length && cols.steps[0] <= s.steps[s.steps.length - 1]) return false;
    if (s.steps.length + cols.steps.length > 2 * budget) return false;
  }
  for (const [name, cols] of Object.entries(event.points)) {
    // Only the curves shown: a metric new to the run comes with the detail's refresh.
    const s = shown.series[name]?.[id];
    if (!s) continue;
    s.steps.push(...cols.steps);
    s.values.push(...cols.values);
    s.times.push(...cols.times);
    if (!shown.total_points) shown.total_points = {};
    if (!shown.total_points[name]) shown.total_points[name] = {};
    shown.total_points[name][id] = (shown.total_points[name][id] || 0) + cols.steps.length;
  }
  return true;
}
