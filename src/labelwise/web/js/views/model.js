// One model: versions and aliases (promotion for admin keys), the training report with its plots, and drift.

import { ApiError, api, path } from '../api.js';
import { announce, fill, h, message } from '../dom.js';
import { count, dateTime, metric, percent } from '../format.js';
import { session } from '../session.js';
import { servedVersion } from './models.js';
import { adminStatus, errorBox, headline, pageHeader } from './shared.js';

export const title = 'Model';

const PLOTS = [
  ['confusion_matrix', 'Confusion matrix', 'Rows are true labels, columns predicted labels; darker cells hold more examples.'],
  ['reliability', 'Reliability diagram', 'How well scores match accuracy: bars on the diagonal mean calibrated scores.'],
  ['per_label_f1', 'Per-label F1', 'F1 of each label on held-out data, worst at the bottom.'],
];
// (row title, dotted path), as in the HTML report; rows missing from every split are left out.
const METRIC_ROWS = [
  ['Examples', 'n'], ['Accuracy', 'accuracy'], ['Subset accuracy', 'subset_accuracy'], ['Hamming loss', 'hamming_loss'],
  ['Micro F1', 'micro.f1'], ['Macro precision', 'macro.precision'], ['Macro recall', 'macro.recall'],
  ['Macro F1', 'macro.f1'], ['Weighted F1', 'weighted.f1'], ['ROC AUC', 'roc_auc'], ['PR AUC', 'pr_auc'],
  ['Expected calibration error', 'ece'],
];
const DERIVED = new Set(['latest']);

function lookup(object, dotted) {
  return dotted.split('.').reduce((value, key) => (value && typeof value === 'object' ? value[key] : undefined), object);
}

/** A captioned, horizontally scrollable table; `numeric` lists the columns to right-align (default: all but the first). */
function tableWrap(caption, head, rows, className, numeric = null) {
  return h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', { class: ['table', className] },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, head.map((cell, i) =>
        h('th', { scope: 'col', class: (numeric ? numeric.includes(i) : i > 0) ? 'num' : null }, cell)))),
      h('tbody', {}, rows)));
}

// Report ---------------------------------------------------------------------------------------------------------

function metricsTable(report) {
  const splits = ['validation', 'test'].filter((split) => report[split] && typeof report[split] === 'object');
  const rows = METRIC_ROWS.filter(([, key]) => splits.some((split) => typeof lookup(report[split], key) === 'number'))
    .map(([name, key]) => h('tr', {}, h('th', { scope: 'row' }, name),
      splits.map((split) => h('td', { class: 'num' }, metric(lookup(report[split], key))))));
  return tableWrap('Metrics by split', ['Metric', ...splits.map((split) => split[0].toUpperCase() + split.slice(1))],
    rows, 'metrics-table');
}

function perLabelTable(report) {
  const split = report.test ? 'test' : 'validation';
  const perLabel = (report[split] && report[split].per_label) || {};
  const rows = Object.entries(perLabel).map(([label, m]) => h('tr', {},
    h('th', { scope: 'row' }, label),
    h('td', { class: 'num' }, metric(m.precision)),
    h('td', { class: 'num' }, metric(m.recall)),
    h('td', { class: 'num' }, metric(m.f1)),
    h('td', { class: 'num' }, count(m.support))));
  if (!rows.length) return null;
  return h('div', {},
    h('h3', {}, `Per label (${split})`),
    tableWrap(`Per-label metrics on the ${split} split`, ['Label', 'Precision', 'Recall', 'F1', 'Support'], rows,
      'per-label-table'));
}

function reportFacts(report) {
  const sizes = (report.data && report.data.sizes) || {};
  const facts = [];
  if (report.engine) facts.push(['Engine', report.engine]);
  if (report.task) facts.push(['Task', report.task === 'multi_label' ? 'multi-label' : 'single-label']);
  if (Array.isArray(report.labels)) facts.push(['Labels', count(report.labels.length)]);
  for (const split of ['train', 'validation', 'test']) {
    if (typeof sizes[split] === 'number') facts.push([`${split[0].toUpperCase()}${split.slice(1)} rows`, count(sizes[split])]);
  }
  if (typeof report.training_seconds === 'number') facts.push(['Training time', `${report.training_seconds.toFixed(1)} s`]);
  if (report.calibration && report.calibration.method) facts.push(['Calibration', report.calibration.method]);
  if (report.created_at) facts.push(['Trained', dateTime(report.created_at)]);
  return h('dl', { class: 'facts' }, facts.map(([name, value]) => h('div', {}, h('dt', {}, name), h('dd', {}, value))));
}

function plotFigure(name, version, [file, caption, description], urls, signal) {
  const holder = h('div', { class: 'plot-holder', 'aria-busy': 'true' }, h('span', { class: 'muted small' }, 'Loading plot…'));
  const figure = h('figure', { class: 'card plot', dataset: { plot: file } },
    holder, h('figcaption', {}, h('strong', {}, caption), h('span', { class: 'muted small' }, description)));
  api.blob(path`/v1/models/${name}/versions/${version}/report/${file}.png`, { signal }).then((blob) => {
    const url = URL.createObjectURL(blob);
    urls.push(url);
    const img = h('img', { src: url, alt: `${caption} of ${name} ${version}`, class: 'plot-image', decoding: 'async' });
    const link = h('a', { href: url, target: '_blank', rel: 'noopener', class: 'plot-link',
      'aria-label': `${caption}: open full size` }, img);
    fill(holder, link);
    holder.removeAttribute('aria-busy');
  }, (exc) => {
    if (signal.aborted) return;
    holder.removeAttribute('aria-busy');
    fill(holder, exc instanceof ApiError && exc.status === 404
      ? h('p', { class: 'muted small' }, 'This report has no such plot.')
      : errorBox(exc, 'Could not load the plot:'));
  });
  return figure;
}

async function reportSection(name, version, urls, signal) {
  const section = h('section', { class: 'section', 'aria-labelledby': 'report-title' },
    h('h2', { id: 'report-title' }, `Training report · ${version}`));
  let report;
  try {
    report = await api.get(path`/v1/models/${name}/versions/${version}/report`, { signal });
  } catch (exc) {
    if (signal.aborted) return section;
    section.append(exc instanceof ApiError && exc.status === 404
      ? message('info', `Version ${version} has no training report (it was published without one).`)
      : errorBox(exc, 'Could not load the report:'));
    return section;
  }
  section.append(
    h('div', { class: 'card report-card' }, reportFacts(report), h('div', { class: 'grid-tables' },
      h('div', {}, h('h3', {}, 'Metrics'), metricsTable(report)), perLabelTable(report))),
    h('div', { class: 'plots' }, PLOTS.map((plot) => plotFigure(name, version, plot, urls, signal))));
  return section;
}

// Drift ----------------------------------------------------------------------------------------------------------

const DRIFT_WINDOWS = [['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days']];
const DRIFT_STATUS = {
  no_data: ['No predictions logged in this window', 'status-running'],
  stable: ['Stable (PSI at most 0.1)', 'status-done'],
  moderate: ['Moderate drift (PSI 0.1 to 0.25)', 'status-running'],
  large: ['Large drift (PSI over 0.25)', 'status-failed'],
};

/** Rows of the label comparison from `GET /v1/models/{name}/drift`: [{label, live, baseline}], most shifted first. */
export function driftRows(body) {
  const live = (body && body.distribution) || {};
  const base = (body && body.baseline_distribution) || {};
  return [...new Set([...Object.keys(base), ...Object.keys(live)])]
    .map((label) => ({ label, live: Number(live[label] ?? 0), baseline: Number(base[label] ?? 0) }))
    .sort((a, b) => Math.abs(b.live - b.baseline) - Math.abs(a.live - a.baseline) || a.label.localeCompare(b.label));
}

function shareBar(value, kind) {
  const bar = h('span', { class: ['drift-bar', kind] });
  bar.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
  return h('span', { class: 'drift-track', 'aria-hidden': 'true' }, bar);
}

function driftBody(name, answer) {
  const [statusText, statusClass] = DRIFT_STATUS[answer.status] || [String(answer.status), 'status-running'];
  const facts = [
    ['PSI of predicted labels', answer.psi === null ? 'n/a' : metric(answer.psi)],
    ['Predictions in window', count(answer.predictions)],
    ['Mean confidence', `${percent(answer.mean_confidence)} (validation ${percent(answer.baseline_mean_confidence)})`],
    ['Low-confidence share', `${percent(answer.low_confidence_share)} (validation ${percent(answer.baseline_low_confidence_share)})`],
  ];
  const rows = driftRows(answer);
  const chart = rows.length
    ? h('figure', { class: 'drift-chart', id: 'drift-chart' },
      h('ul', { class: 'drift-rows', 'aria-hidden': 'true' }, rows.map((row) => h('li', { class: 'drift-row' },
        h('span', { class: 'drift-label' }, row.label),
        h('span', { class: 'drift-bars' }, shareBar(row.live, 'live'), shareBar(row.baseline, 'baseline'))))),
      h('figcaption', {}, h('ul', { class: 'legend' },
        h('li', {}, h('span', { class: 'swatch swatch-0', 'aria-hidden': 'true' }), 'live share of predictions'),
        h('li', {}, h('span', { class: 'swatch swatch-1', 'aria-hidden': 'true' }), 'share on validation'))))
    : null;
  return [
    h('div', { class: 'job-head' },
      h('p', { class: 'muted small', id: 'drift-since' }, `Version ${answer.model_version} since ${dateTime(answer.since)}`),
      h('span', { class: ['badge', statusClass], id: 'drift-status', dataset: { status: answer.status } }, statusText)),
    h('dl', { class: 'facts', id: 'drift-facts' }, facts.map(([term, value]) => h('div', {}, h('dt', {}, term), h('dd', {}, value)))),
    chart,
    rows.length ? h('details', {}, h('summary', {}, 'Label shares as a table'),
      tableWrap(`Predicted label shares of ${name}, live and on validation`, ['Label', 'Live', 'Validation'],
        rows.map((row) => h('tr', {}, h('th', { scope: 'row' }, row.label),
          h('td', { class: 'num' }, percent(row.live)), h('td', { class: 'num' }, percent(row.baseline)))),
        'drift-table')) : null,
  ];
}

async function driftSection(name, signal) {
  const body = h('div', { class: 'drift-body', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading drift…'));
  const windowSelect = h('select', { id: 'drift-window' },
    DRIFT_WINDOWS.map(([value, text]) => h('option', { value, selected: value === '24h' }, text)));
  const section = h('section', { class: 'section', id: 'drift', 'aria-labelledby': 'drift-title' },
    h('h2', { id: 'drift-title' }, 'Drift'),
    h('p', { class: 'hint' }, 'How the production version\u2019s live predictions compare with what it predicted on its '
      + 'validation data. Reads the prediction log, so it sees the predictions sampled into it.'),
    h('div', { class: 'card' },
      h('div', { class: 'field compact' }, h('label', { for: 'drift-window' }, 'Window'), windowSelect), body));
  async function load() {
    try {
      const answer = await api.get(`${path`/v1/models/${name}/drift`}?window=${encodeURIComponent(windowSelect.value)}`,
        { signal });
      fill(body, ...(answer.status === 'no_data' || !answer.predictions
        ? [h('p', { class: 'muted', id: 'drift-empty' }, `No drift data for this window yet: no predictions of version `
          + `${answer.model_version} were logged since ${dateTime(answer.since)}.`)]
        : driftBody(name, answer)));
    } catch (exc) {
      if (signal.aborted) return;
      fill(body, exc instanceof ApiError && exc.status === 404
        ? h('p', { class: 'muted', id: 'drift-empty' }, 'No drift data for this model yet.')
        : errorBox(exc, 'Could not load drift:'));
    }
  }
  windowSelect.addEventListener('change', load);
  await load();
  return section;
}

// Versions and aliases -------------------------------------------------------------------------------------------

function versionsSection(detail, selected, ctx, onChanged) {
  const name = detail.id;
  const status = h('div', { class: 'form-status', id: 'alias-status' });
  const readOnly = session.admin === false;
  let section = null;

  async function change(method, alias, version) {
    fill(status, message('info', 'Saving…'));
    try {
      const url = path`/v1/models/${name}/aliases/${alias}`;
      const updated = method === 'PUT'
        ? await api.put(url, { version }, { signal: ctx.signal })
        : await api.delete(url, { signal: ctx.signal });
      session.admin = true;
      const done = method === 'PUT' ? `${alias} now points to ${version}.` : `Alias ${alias} removed.`;
      onChanged(updated, done);
    } catch (exc) {
      if (ctx.signal.aborted) return;
      if (exc instanceof ApiError && exc.status === 403) {
        session.admin = false;
        const refusal = message('error', 'Changing aliases needs a key with the admin scope. '
          + 'Sign in with an admin key to promote versions.');
        fill(status, refusal);
        for (const button of section.querySelectorAll('.alias-admin button, button[data-promote]')) button.disabled = true;
        refusal.setAttribute('tabindex', '-1');
        refusal.focus();
        return;
      }
      fill(status, errorBox(exc, 'The alias was not changed:'));
    }
  }

  const rows = detail.versions.map((v) => {
    const m = headline(v.metrics);
    const isSelected = v.version === selected;
    const promote = (v.aliases || []).includes('production') ? h('span', { class: 'muted small' }, 'in production')
      : readOnly ? h('span', { class: 'muted small' }, '—')
      : h('button', { type: 'button', class: 'button small',
        dataset: { promote: v.version }, onClick: () => change('PUT', 'production', v.version) },
      'Promote', h('span', { class: 'visually-hidden' }, ` ${v.version} to production`));
    return h('tr', { class: isSelected ? 'selected' : null },
      h('th', { scope: 'row' },
        isSelected ? h('span', { 'aria-current': 'true' }, v.version)
          : h('a', { href: `#/models/${encodeURIComponent(name)}/${encodeURIComponent(v.version)}` }, v.version)),
      h('td', {}, dateTime(v.created_at)),
      h('td', {}, v.engine),
      h('td', { class: 'num' }, typeof m.accuracy === 'number' ? percent(m.accuracy) : metric(m.micro_f1)),
      h('td', { class: 'num' }, metric(m.macro_f1)),
      h('td', {}, h('ul', { class: 'chips' }, (v.aliases || []).map((a) => h('li', { class: ['chip', a === 'production' && 'chip-strong'] }, a)))),
      h('td', {}, promote));
  });

  const aliasInput = h('input', { id: 'alias-name', name: 'alias', required: true, maxlength: 32, value: 'canary',
    autocomplete: 'off', pattern: '[a-z][a-z0-9_\\-]{0,31}', 'aria-describedby': 'alias-hint' });
  const versionSelect = h('select', { id: 'alias-version' },
    detail.versions.map((v) => h('option', { value: v.version }, v.version)));
  versionSelect.value = selected;
  // `production` on the newest version may be implicit (no alias row): removing it would change nothing.
  const newest = detail.versions[0] && detail.versions[0].version;
  const explicit = Object.entries(detail.aliases || {})
    .filter(([alias, version]) => !DERIVED.has(alias) && !(alias === 'production' && version === newest));
  const aliasForm = h('form', { class: 'alias-form', novalidate: true, onSubmit: (event) => {
    event.preventDefault();
    const alias = aliasInput.value.trim();
    if (!/^[a-z][a-z0-9_-]{0,31}$/.test(alias)) {
      fill(status, message('error', 'Alias: 1 to 32 lowercase letters, digits, "_" or "-", starting with a letter.'));
      aliasInput.focus();
      return;
    }
    change('PUT', alias, versionSelect.value);
  } },
  h('div', { class: 'field compact' }, h('label', { for: 'alias-name' }, 'Alias'), aliasInput),
  h('div', { class: 'field compact' }, h('label', { for: 'alias-version' }, 'Version'), versionSelect),
  h('button', { type: 'submit', class: 'button primary', id: 'set-alias' }, 'Set alias'));
  const removals = h('ul', { class: 'alias-list' }, explicit.map(([alias, version]) => h('li', {},
    h('span', { class: 'chip' }, `${alias} → ${version}`),
    h('button', { type: 'button', class: 'button ghost small', onClick: () => change('DELETE', alias) }, 'Remove', h('span', { class: 'visually-hidden' }, ` alias ${alias}`)))));

  const admin = readOnly
    ? h('div', { class: 'alias-admin' }, h('h3', {}, 'Aliases'),
      h('p', { class: 'hint', id: 'alias-readonly' }, 'Promoting a version or changing aliases needs a key with the '
        + 'admin scope; this key can read models but not change them.'))
    : h('div', { class: 'alias-admin' },
      h('h3', {}, 'Aliases'),
      h('p', { class: 'hint', id: 'alias-hint' },
        'Callers use name@alias. Setting production promotes a version; every change is audited.'),
      aliasForm, removals, status);
  section = h('section', { class: 'section', 'aria-labelledby': 'versions-title' },
    h('h2', { id: 'versions-title' }, 'Versions and aliases'),
    h('div', { class: 'card' },
      tableWrap(`Versions of ${name}`, ['Version', 'Created', 'Engine', 'Accuracy', 'Macro F1', 'Aliases',
        readOnly ? 'Status' : 'Promote'], rows, 'versions-table', [3, 4]),
      admin));
  return section;
}

// Page -----------------------------------------------------------------------------------------------------------

export async function render(root, ctx) {
  const [name, wanted] = ctx.params;
  const urls = [];
  const cleanup = () => { for (const url of urls.splice(0)) URL.revokeObjectURL(url); };
  root.append(h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' },
    h('a', { href: '#/models' }, 'Models'), h('span', { 'aria-hidden': 'true' }, ' / '), h('span', {}, name)));
  const page = h('div', { 'aria-busy': 'true' }, h('h1', {}, name), h('p', { class: 'muted' }, 'Loading…'));
  root.append(page);
  document.title = `${name} · Labelwise`;

  let generation = 0; // a newer draw (after an alias change) wins over a slower, older one
  async function draw(detail, notice) {
    generation += 1;
    const mine = generation;
    cleanup();
    const selected = wanted && detail.versions.some((v) => v.version === wanted) ? wanted : servedVersion(detail).version;
    const served = servedVersion(detail);
    const labels = (detail.versions.find((v) => v.version === selected) || served).labels || [];
    const header = pageHeader(name,
      `${detail.versions.length} version${detail.versions.length === 1 ? '' : 's'} · ${labels.length} labels · `
      + `production serves ${served.version}`,
      h('a', { class: 'button', href: '#/playground', onClick: () => {
        session.save('playground', { ...session.load('playground', {}), mode: 'model', model: name });
      } }, 'Try in Playground'));
    const versions = versionsSection(detail, selected, ctx, (updated, done) => {
      draw(updated, done);
      announce(done);
    });
    const labelList = h('section', { class: 'section', 'aria-labelledby': 'labels-title' },
      h('h2', { id: 'labels-title' }, 'Labels'),
      h('ul', { class: 'chips labels' }, labels.map((label) => h('li', { class: 'chip' }, label))));
    const done = notice ? message('success', notice) : null;
    fill(page, ...[header, done, versions, labelList].filter(Boolean));
    page.removeAttribute('aria-busy');
    if (done) {
      // The button that was pressed is gone: put focus on the outcome, not on the page's start.
      done.setAttribute('tabindex', '-1');
      done.focus();
    }
    const [report, drift] = await Promise.all([reportSection(name, selected, urls, ctx.signal), driftSection(name, ctx.signal)]);
    if (!ctx.signal.aborted && mine === generation) page.append(report, drift);
  }

  try {
    const [detail] = await Promise.all([api.get(path`/v1/models/${name}`, { signal: ctx.signal }), adminStatus(ctx.signal)]);
    await draw(detail);
  } catch (exc) {
    if (ctx.signal.aborted) return cleanup;
    page.removeAttribute('aria-busy');
    fill(page, h('h1', {}, name), exc instanceof ApiError && exc.status === 404
      ? message('error', `There is no model named ${name}. `, h('a', { href: '#/models' }, 'See all models'), '.')
      : errorBox(exc, 'Could not load the model:'));
  }
  return cleanup;
}
