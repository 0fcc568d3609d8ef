// The JSON answer of a response, or null when it is not JSON (a proxy's HTML error page, a
// reset): the scripts' checks then report it.
export function answerOf(res) {
  try {
    return res.json();
  } catch {
    return null;
  }
}

// The checks of an ingest answer: a 200 reporting `expectValid` valid records.
export function ingestChecks(answer, expectValid) {
  const stats = answer && answer.result && answer.result.stats;
  return {
    'status is 200': function (r) {
      return r.status === 200;
    },
    ['result.stats.records.valid is ' + expectValid]: function () {
      return Boolean(stats && stats.records && stats.records.valid === expectValid);
    },
  };
}

// Adds each of `metrics` (metric → threshold) to `thresholds`, for the scenario `scenario` only.
export function addScenarioThresholds(thresholds, scenario, metrics) {
  Object.keys(metrics).forEach(function (metric) {
    thresholds[metric + '{scenario:' + scenario + '}'] = [metrics[metric]];
  });
}
