/**
 * A self-contained HTML page with inline SVG line charts (no scripts, no external files), for the
 * HTTP benchmark's report.
 */

export interface Series {
  name: string;
  color: string;
  points: readonly (readonly [number, number])[];
  /** Draw a dot at every point (for a few points; per-request series are plain lines). */
  markers?: boolean;
  /** A reference line (a target), drawn dashed. */
  dashed?: boolean;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logY?: boolean;
  /** Ticks on the x axis; by default about six evenly spaced ones. */
  xTicks?: number[];
}

const W = 920;
const H = 380;
const M = { left: 70, right: 170, top: 36, bottom: 50 };

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function niceStep(range: number, count: number): number {
  const raw = range / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function label(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return v.toLocaleString('en-US', { maximumFractionDigits: 0 });
  if (Math.abs(v) >= 10) return v.toFixed(0);
  return String(Number(v.toPrecision(2)));
}

export function lineChart(c: Chart): string {
  const all = c.series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]).filter((y) => !c.logY || y > 0);
  let xMin = Math.min(...xs, ...(c.xTicks ?? []));
  let xMax = Math.max(...xs, ...(c.xTicks ?? []));
  if (xMin === xMax) xMax = xMin + 1;
  if (!Number.isFinite(xMin)) [xMin, xMax] = [0, 1];
  let yMin: number;
  let yMax: number;
  let yTicks: number[];
  if (c.logY) {
    yMin = 10 ** Math.floor(Math.log10(Math.min(...ys)));
    yMax = 10 ** Math.ceil(Math.log10(Math.max(...ys)));
    if (yMax <= yMin) yMax = yMin * 10;
    yTicks = [];
    for (let d = yMin; d <= yMax * 1.0001; d *= 10) {
      for (const m of [1, 2, 5]) if (d * m <= yMax * 1.0001) yTicks.push(d * m);
    }
  } else {
    yMin = 0;
    const step = niceStep(Math.max(...ys, 1e-9), 5);
    yMax = Math.ceil(Math.max(...ys, 1e-9) / step) * step;
    yTicks = [];
    for (let v = 0; v <= yMax + step / 2; v += step) yTicks.push(v);
  }
  const xTicks =
    c.xTicks ??
    (() => {
      const step = niceStep(xMax - xMin, 6);
      const t: number[] = [];
      for (let v = Math.ceil(xMin / step) * step; v <= xMax; v += step) t.push(v);
      return t;
    })();
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const px = (x: number) => M.left + ((x - xMin) / (xMax - xMin)) * pw;
  const py = (y: number) => {
    const f = c.logY
      ? (Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))
      : (y - yMin) / (yMax - yMin);
    return M.top + ph - f * ph;
  };
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${escapeHtml(c.title)}</text>`,
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
  ];
  for (const t of yTicks) {
    const y = py(t).toFixed(1);
    out.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${label(t)}</text>`,
    );
  }
  for (const t of xTicks) {
    const x = px(t).toFixed(1);
    out.push(
      `<line x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#eee"/>`,
      `<text x="${x}" y="${M.top + ph + 16}" text-anchor="middle">${label(t)}</text>`,
    );
  }
  out.push(
    `<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">${escapeHtml(c.xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(c.yLabel)}</text>`,
  );
  c.series.forEach((s, i) => {
    const pts = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="${s.markers ? 2 : 1}" stroke-opacity="0.85"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts}"/>`,
    );
    if (s.markers) {
      for (const [x, y] of s.points) {
        out.push(
          `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3.5" fill="${s.color}"><title>${escapeHtml(s.name)}: ${label(y)}</title></circle>`,
        );
      }
    }
    const ly = M.top + 10 + i * 20;
    out.push(
      `<line x1="${W - M.right + 14}" x2="${W - M.right + 38}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="3"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      `<text x="${W - M.right + 44}" y="${ly}" dominant-baseline="middle">${escapeHtml(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n');
}

export function htmlPage(title: string, sections: string[]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
body { font-family: sans-serif; max-width: 960px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #176f2c; } .miss { color: #b3261e; }
svg { display: block; margin: 1em 0; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${sections.join('\n')}
</body>
</html>
`;
}
