// Time-series charts through the vendored uPlot (vendor/uplot): one x axis of times (seconds)
// and named series. uPlot sizes itself in pixels, so the chart follows its box's width.

import uPlot from '../vendor/uplot/uPlot.esm.js';
import { h } from './dom.js';

const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ca8a04', '#0891b2', '#db2777', '#4b5563'];

/** A chart in a new element: xs (unix seconds, ascending), series [{label, values, scale?}];
 * `scales` names extra y scales ({ratio: {range: [0, 1]}}); `pad` widens the x range by that
 * many seconds each side (so that one hour's bar is not a whole axis, as uPlot would draw it). */
export function timeChart(title, xs, series, { height = 260, scales = {}, bars = false, pad = 0 } = {}) {
  const box = h('figure', { class: 'chart', 'aria-label': title }, h('figcaption', null, title));
  if (xs.length === 0) {
    box.append(h('p', { class: 'muted' }, 'No data in this range.'));
    return box;
  }
  const opts = {
    width: 600,
    height,
    scales: { x: { time: true }, ...scales },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'), // the API and the page speak UTC
    axes: [{}, { scale: series[0].scale || 'y' }],
    series: [{}, ...series.map((s, i) => ({
      label: s.label,
      scale: s.scale || 'y',
      stroke: COLORS[i % COLORS.length],
      width: 2,
      paths: bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
      points: { show: xs.length < 50 },
    }))],
  };
  const extra = [...new Set(series.map((s) => s.scale).filter((sc) => sc && sc !== (series[0].scale || 'y')))];
  for (const sc of extra) opts.axes.push({ scale: sc, side: 1, grid: { show: false } });
  const plot = new uPlot(opts, [xs, ...series.map((s) => s.values)], box);
  // Set, not a scale's range function: uPlot sizes the x range of data auto-ranged from one
  // point itself (a thousand days for times in seconds) and ignores that function then.
  if (pad) plot.setScale('x', { min: xs[0] - pad, max: xs[xs.length - 1] + pad });
  const fit = () => plot.setSize({ width: Math.max(240, box.clientWidth - 2), height });
  new ResizeObserver(fit).observe(box);
  return box;
}
