import { svg } from './dom';

/** A small inline sparkline (SVG, no chart library: the overview loads without uPlot). */
export function sparkline(values: number[], status: string, width = 120, height = 28): SVGElement {
  const vs = values.filter((v) => Number.isFinite(v));
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: `spark spark-${status}`, 'aria-hidden': 'true' });
  if (vs.length < 2) {
    root.appendChild(svg('line', { x1: 0, x2: width, y1: height / 2, y2: height / 2, class: 'spark-empty' }));
    return root;
  }
  const lo = Math.min(...vs);
  const hi = Math.max(...vs);
  const span = hi - lo || 1;
  const pts = vs.map((v, i) => `${((i / (vs.length - 1)) * (width - 2) + 1).toFixed(1)},${(height - 2 - ((v - lo) / span) * (height - 4)).toFixed(1)}`);
  root.appendChild(svg('polyline', { points: pts.join(' '), class: 'spark-line' }));
  const last = pts[pts.length - 1]!.split(',');
  root.appendChild(svg('circle', { cx: last[0]!, cy: last[1]!, r: 2, class: 'spark-dot' }));
  return root;
}
