// A small SVG line chart (no library): series of {x: Date, y: number} points, a legend and an optional threshold.

import { h, s } from './dom.js';
import { date } from './format.js';

const WIDTH = 640;
const PAD = { top: 12, right: 16, bottom: 28, left: 48 };
export const PALETTE = ['#4f46e5', '#0e7c6b', '#c2410c', '#7c3aed'];

function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * magnitude >= value) * magnitude;
  return step;
}

function shortNumber(value) {
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (Math.abs(value) >= 1e4) return `${Math.round(value / 1e3)}k`;
  if (Number.isInteger(value)) return String(value);
  return value.toFixed(Math.abs(value) < 1 ? 2 : 1);
}

/**
 * `series`: [{name, points: [{x: Date, y: number}]}]. Returns a figure with the chart (role img, described by
 * `summary`) and a legend. The numbers themselves should also be offered as a table by the caller.
 */
export function lineChart({ series, summary, threshold = null, height = 220, yMin = 0 }) {
  const points = series.flatMap((line) => line.points);
  const xs = points.map((p) => p.x.getTime());
  const ys = points.map((p) => p.y).concat(threshold === null ? [] : [threshold]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const y1 = niceMax(Math.max(...ys));
  const y0 = Math.min(yMin, ...ys);
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = height - PAD.top - PAD.bottom;
  const sx = (x) => PAD.left + (x1 === x0 ? innerW / 2 : ((x - x0) / (x1 - x0)) * innerW);
  const sy = (y) => PAD.top + innerH - ((y - y0) / (y1 - y0 || 1)) * innerH;

  const grid = [];
  for (let i = 0; i <= 4; i += 1) {
    const value = y0 + ((y1 - y0) * i) / 4;
    const y = sy(value);
    grid.push(s('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: 'chart-grid' }));
    grid.push(s('text', { x: PAD.left - 8, y: y + 4, 'text-anchor': 'end', class: 'chart-tick' }, shortNumber(value)));
  }
  const xTicks = [...new Set([x0, (x0 + x1) / 2, x1])].map((x) =>
    s('text', { x: sx(x), y: height - 8, 'text-anchor': 'middle', class: 'chart-tick' }, date(new Date(x))),
  );
  const lines = series.map((line, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const sorted = [...line.points].sort((a, b) => a.x - b.x);
    const d = sorted.map((p, j) => `${j ? 'L' : 'M'}${sx(p.x.getTime()).toFixed(1)},${sy(p.y).toFixed(1)}`).join('');
    return s('g', {}, [
      s('path', { d, fill: 'none', stroke: colour, 'stroke-width': 2.5, 'stroke-linejoin': 'round' }),
      sorted.map((p) => s('circle', { cx: sx(p.x.getTime()), cy: sy(p.y), r: 3, fill: colour })),
    ]);
  });
  const limit = threshold === null ? null : s('line', {
    x1: PAD.left, x2: WIDTH - PAD.right, y1: sy(threshold), y2: sy(threshold), class: 'chart-threshold',
  });
  const svg = s('svg', {
    viewBox: `0 0 ${WIDTH} ${height}`, class: 'chart', role: 'img', 'aria-label': summary, focusable: 'false',
  }, grid, xTicks, limit, lines);
  const legend = h('ul', { class: 'legend' }, series.map((line, i) =>
    h('li', {}, h('span', { class: `swatch swatch-${i % PALETTE.length}`, 'aria-hidden': 'true' }), line.name)),
  threshold === null ? null : h('li', {}, h('span', { class: 'swatch swatch-threshold', 'aria-hidden': 'true' }),
    'alert threshold'));
  return h('figure', { class: 'chart-figure' }, svg, legend);
}
