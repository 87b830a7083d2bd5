// Models: every model with its versions, aliases and headline metrics.

import { ApiError, api, path } from '../api.js';
import { fill, h } from '../dom.js';
import { date, metric, percent } from '../format.js';
import { errorBox, headline, listModels, pageHeader } from './shared.js';

export const title = 'Models';

/** The version the bare model name serves (its production alias), else the newest. */
export function servedVersion(model) {
  const versions = model.versions || [];
  return versions.find((v) => (v.aliases || []).includes('production')) || versions[0];
}

export function aliasChips(aliases) {
  return h('ul', { class: 'chips', 'aria-label': 'Aliases' }, Object.entries(aliases || {}).map(([alias, version]) =>
    h('li', { class: ['chip', alias === 'production' && 'chip-strong'] }, `${alias} → ${version}`)));
}

function metricsList(detail) {
  const served = detail ? servedVersion(detail) : null;
  const m = headline(served && served.metrics);
  const items = [];
  if (typeof m.accuracy === 'number') items.push(['Accuracy', percent(m.accuracy)]);
  if (typeof m.micro_f1 === 'number') items.push(['Micro F1', metric(m.micro_f1)]);
  if (typeof m.macro_f1 === 'number') items.push(['Macro F1', metric(m.macro_f1)]);
  if (typeof m.ece === 'number') items.push(['ECE', metric(m.ece)]);
  if (!items.length) return h('p', { class: 'muted small' }, 'No metrics recorded');
  return h('dl', { class: 'stats' }, items.map(([name, value]) => h('div', {}, h('dt', {}, name), h('dd', {}, value))));
}

function card(model, detail) {
  const served = servedVersion(detail || model);
  const versions = model.versions || [];
  return h('li', { class: 'card model-card' },
    h('div', { class: 'model-card-head' },
      h('h2', {}, h('a', { href: `#/models/${encodeURIComponent(model.id)}`, class: 'model-link' }, model.id)),
      served ? h('span', { class: 'badge' }, served.engine) : null),
    h('p', { class: 'muted small' },
      `${versions.length} version${versions.length === 1 ? '' : 's'}`,
      served ? ` · ${served.task === 'multi_label' ? 'multi-label' : 'single-label'}` : '',
      served ? ` · ${date(served.created_at)}` : ''),
    aliasChips(model.aliases),
    metricsList(detail));
}

export async function render(root, ctx) {
  root.append(pageHeader('Models', 'Trained models, their versions and aliases. Open one for its training report.'));
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading models…'));
  root.append(body);
  let models;
  try {
    models = await listModels(ctx.signal);
  } catch (exc) {
    if (ctx.signal.aborted) return;
    fill(body, errorBox(exc, 'Could not list the models:'));
    body.removeAttribute('aria-busy');
    return;
  }
  if (!models.length) {
    fill(body, h('div', { class: 'card empty-state' },
      h('h2', {}, 'No models yet'),
      h('p', {}, 'Train one from a labelled file on the ', h('a', { href: '#/jobs' }, 'Jobs'), ' page, or run ',
        h('code', {}, 'labelwise train tickets.csv --name tickets'), '. Until then, try zero-shot in the ',
        h('a', { href: '#/playground' }, 'Playground'), '.')));
    body.removeAttribute('aria-busy');
    return;
  }
  // The listing has no metrics; each model's details do. A model whose details fail still shows its card.
  const details = await Promise.all(models.map((model) =>
    api.get(path`/v1/models/${model.id}`, { signal: ctx.signal }).catch((exc) => {
      if (!(exc instanceof ApiError)) throw exc;
      return null;
    })));
  if (ctx.signal.aborted) return;
  fill(body, h('ul', { class: 'model-grid' }, models.map((model, i) => card(model, details[i]))));
  body.removeAttribute('aria-busy');
}
