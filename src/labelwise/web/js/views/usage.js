// Usage: requests, texts and credits per day (GET /v1/usage), with totals and a split by route.

import { ApiError, api } from '../api.js';
import { lineChart } from '../chart.js';
import { fill, h } from '../dom.js';
import { count, date, isNumber } from '../format.js';
import { errorBox, pageHeader, unavailable } from './shared.js';

export const title = 'Usage';

const FIELDS = ['requests', 'texts', 'credits'];

function whenOf(row) {
  return row.day ?? row.date ?? row.period ?? row.start ?? row.bucket ?? row.time ?? row.at;
}

/** Ledger rows summed per `keyOf(row)`: [{key, requests, texts, credits}] in first-seen order. */
export function summed(rows, keyOf) {
  const groups = new Map();
  for (const row of rows) {
    const key = keyOf(row);
    const group = groups.get(key) || { key, requests: 0, texts: 0, credits: 0 };
    for (const field of FIELDS) group[field] += Number(row[field]) || 0;
    groups.set(key, group);
  }
  return [...groups.values()];
}

/** Rows per day [{when: Date, requests, texts, credits}], oldest first, from the ledger (one row per key, day, route). */
export function usageByDay(body) {
  const list = Array.isArray(body) ? body : (body && (body.data || body.buckets || body.days || body.usage)) || [];
  if (!Array.isArray(list)) return [];
  return summed(list.filter((row) => whenOf(row) !== undefined), (row) => String(whenOf(row)))
    .map((group) => ({ ...group, when: new Date(group.key) }))
    .filter((row) => !Number.isNaN(row.when.getTime()))
    .sort((a, b) => a.when - b.when);
}

function tile(name, value) {
  return h('div', { class: 'card tile' }, h('span', { class: 'tile-name' }, name), h('span', { class: 'tile-value' }, value));
}

function table(caption, first, rows) {
  return h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', { class: 'table' },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, [first, 'Requests', 'Texts', 'Credits'].map((c, i) =>
        h('th', { scope: 'col', class: i ? 'num' : null }, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, h('th', { scope: 'row' }, r.name),
        FIELDS.map((field) => h('td', { class: 'num' }, count(r[field]))))))));
}

export async function render(root, ctx) {
  const header = pageHeader('Usage', 'Requests, texts classified and credits charged, per UTC day.');
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading usage…'));
  root.append(header, body);
  let answer;
  try {
    answer = await api.get('/v1/usage', { signal: ctx.signal });
  } catch (exc) {
    if (ctx.signal.aborted) return;
    if (!(exc instanceof ApiError)) throw exc;
    fill(body, exc.endpointMissing ? unavailable('Usage reporting') : errorBox(exc, 'Could not load usage:'));
    body.removeAttribute('aria-busy');
    return;
  }
  const ledger = Array.isArray(answer && answer.data) ? answer.data : [];
  const days = usageByDay(answer);
  const totals = (answer && (answer.total || answer.totals)) || {};
  const sum = (field) => (isNumber(totals[field]) ? totals[field] : days.reduce((t, row) => t + row[field], 0));
  const keys = new Set(ledger.map((row) => row.key).filter(Boolean));
  const span = answer && answer.from && answer.to ? `${date(answer.from)} to ${date(answer.to)}` : null;
  const tiles = h('div', { class: 'tiles', id: 'usage-totals' },
    tile('Requests', count(sum('requests'))), tile('Texts', count(sum('texts'))), tile('Credits', count(sum('credits'))));
  const scope = h('p', { class: 'muted' }, span ? `From ${span} (UTC). ` : '',
    keys.size > 1 ? `All ${keys.size} keys (your key has the admin scope).` : 'Your key only.');
  if (!days.length) {
    fill(body, scope, tiles, h('p', { class: 'muted section' }, 'No usage recorded in this period yet.'));
    body.removeAttribute('aria-busy');
    return;
  }
  const byRoute = summed(ledger, (row) => String(row.route ?? 'all')).map((r) => ({ ...r, name: r.key }));
  const byKey = summed(ledger, (row) => String(row.key ?? '')).map((r) => ({ ...r, name: r.key }));
  fill(body,
    scope,
    tiles,
    h('section', { class: 'card section', 'aria-labelledby': 'usage-chart-title' },
      h('h2', { id: 'usage-chart-title' }, 'Per day'),
      lineChart({
        summary: `Requests, texts and credits per day from ${date(days[0].when)} to ${date(days[days.length - 1].when)}.`,
        series: FIELDS.map((field) => ({ name: field, points: days.map((r) => ({ x: r.when, y: r[field] })) })),
      })),
    h('div', { class: 'grid-2 section' },
      h('section', { 'aria-labelledby': 'usage-days-title' }, h('h2', { id: 'usage-days-title' }, 'By day'),
        table('Usage by day', 'Day', [...days].reverse().map((r) => ({ ...r, name: date(r.when) })))),
      h('section', { 'aria-labelledby': 'usage-routes-title' }, h('h2', { id: 'usage-routes-title' }, 'By route'),
        table('Usage by route', 'Route', byRoute),
        keys.size > 1 ? h('h2', { class: 'section' }, 'By key') : null,
        keys.size > 1 ? table('Usage by key', 'Key', byKey) : null)));
  body.removeAttribute('aria-busy');
}
