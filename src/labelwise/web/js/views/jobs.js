// Jobs: classify a whole file in the background, train a model from a file, watch progress, download results.

import { ApiError, api, path, request } from '../api.js';
import { announce, clear, fill, h, message } from '../dom.js';
import { count, dateTime, percent } from '../format.js';
import { session } from '../session.js';
import { errorBox, listModels, modelSelect, pageHeader, unavailable } from './shared.js';

export const title = 'Jobs';

const DONE = new Set(['succeeded']);
const FAILED = new Set(['failed', 'cancelled']);
const ACCEPT = '.csv,.tsv,.jsonl,.parquet';
const POLL_MS = [500, 500, 1000, 1000, 2000, 3000, 5000];

/**
 * {state: 'running'|'done'|'failed', status, fraction (0..1 or null), error} from a job of `GET /v1/jobs/{id}`:
 * `state` is queued, running, succeeded, failed or cancelled; progress is `rows_done` of `rows_total` (a train job
 * has no rows to count, so its progress is unknown until it ends).
 */
export function jobState(job) {
  const status = String(job.state ?? 'queued');
  let fraction = null;
  if (typeof job.rows_done === 'number' && typeof job.rows_total === 'number' && job.rows_total > 0) {
    fraction = job.rows_done / job.rows_total;
  }
  const state = DONE.has(status) ? 'done' : FAILED.has(status) ? 'failed' : 'running';
  if (state === 'done') fraction = 1;
  return { state, status, fraction: fraction === null ? null : Math.max(0, Math.min(1, fraction)), error: job.error || null };
}

/** "120 of 400 rows · 85 rows/s · about 8 s left", from what the job reports. */
function progressText(job, st) {
  const parts = [];
  if (typeof job.rows_total === 'number' && job.rows_total > 0) parts.push(`${count(job.rows_done)} of ${count(job.rows_total)} rows`);
  if (st.state === 'running' && typeof job.rate === 'number' && job.rate > 0) parts.push(`${count(job.rate)} rows/s`);
  if (st.state === 'running' && typeof job.eta_seconds === 'number') parts.push(`about ${Math.ceil(job.eta_seconds)} s left`);
  if (typeof job.credits === 'number' && job.credits > 0) parts.push(`${count(job.credits)} credits`);
  return parts.join(' · ');
}

function progressBar(fraction, label) {
  const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100 },
    h('span', { class: 'progress-fill' }));
  if (fraction === null) bar.classList.add('indeterminate');
  else {
    bar.setAttribute('aria-valuenow', String(Math.round(fraction * 100)));
    bar.firstChild.style.width = `${fraction * 100}%`;
  }
  return bar;
}

async function download(job, signal, status) {
  try {
    const response = await request('GET', path`/v1/jobs/${job.id}/results`, { as: 'response', signal });
    const disposition = response.headers.get('content-disposition') || '';
    const named = /filename="?([^";]+)"?/i.exec(disposition);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: named ? named[1] : `${job.id}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    announce(`Downloaded the results of job ${job.id}`);
  } catch (exc) {
    if (signal.aborted) return;
    fill(status, errorBox(exc, 'Could not download the results:'));
  }
}

export async function render(root, ctx) {
  root.append(pageHeader('Jobs', 'Classify a whole file in the background, or train a model from labelled examples.'));
  // The server keeps the jobs; the tab remembers only which file each one came from (the API does not say).
  const files = session.load('job-files', {});
  const timers = new Set();
  const list = h('ul', { class: 'job-list', id: 'job-list', 'aria-live': 'polite' });
  const listStatus = h('div', { class: 'form-status' });
  const listSection = h('section', { class: 'section', 'aria-labelledby': 'jobs-title' },
    h('h2', { id: 'jobs-title' }, 'Your jobs'), listStatus, list);
  const shown = new Set();

  function drawJob(first) {
    const item = h('li', { class: 'card job', dataset: { job: first.id, kind: first.kind } });
    const status = h('div', { class: 'form-status' });
    function paint(job) {
      const st = jobState(job);
      item.dataset.state = job.state;
      const actions = [];
      if (st.state === 'done' && (job.kind === 'classify' || job.kind === 'embed')) {
        actions.push(h('button', { type: 'button', class: 'button primary small download',
          onClick: () => download(job, ctx.signal, status) }, 'Download results',
        h('span', { class: 'visually-hidden' }, ` of job ${job.id}`)));
      }
      const result = job.result && typeof job.result === 'object' ? job.result : null;
      if (st.state === 'done' && job.kind === 'train' && result && result.model) {
        const version = result.version ? String(result.version) : '';
        actions.push(h('a', { class: 'button small open-model',
          href: `#/models/${encodeURIComponent(String(result.model))}${version ? `/${encodeURIComponent(version)}` : ''}` },
        `Open ${result.model}${version ? ` ${version}` : ''}`));
      }
      if (st.state === 'running') {
        actions.push(h('button', { type: 'button', class: 'button ghost small cancel', onClick: () => cancel(job, status) },
          'Cancel', h('span', { class: 'visually-hidden' }, ` job ${job.id}`)));
      }
      const file = files[job.id];
      const what = { train: `Train ${job.model || 'model'}`, embed: `Embed with ${job.model || 'the encoder'}` }[job.kind]
        || `Classify with ${job.model || 'a model'}`;
      const details = progressText(job, st);
      fill(item,
        h('div', { class: 'job-head' },
          h('strong', {}, what),
          h('span', { class: ['badge', `status-${st.state}`, 'job-state'] }, st.status)),
        h('p', { class: 'muted small' }, `${file ? `${file} · ` : ''}Job ${job.id} · submitted ${dateTime(job.created_at)}`),
        progressBar(st.fraction, `Progress of job ${job.id}`),
        h('p', { class: 'small job-progress' }, st.fraction === null ? (st.state === 'running' ? `${st.status}…` : '')
          : [percent(st.fraction, 0), details ? ` · ${details}` : '']),
        st.error ? message('error', String(st.error)) : null,
        actions.length ? h('div', { class: 'actions' }, actions) : null,
        status);
      return st;
    }

    async function cancel(job, status) {
      try {
        paint(await api.delete(path`/v1/jobs/${job.id}`, { signal: ctx.signal }));
      } catch (exc) {
        if (ctx.signal.aborted) return;
        fill(status, errorBox(exc, 'Could not cancel the job:'));
      }
    }

    let attempt = 0;
    async function poll() {
      try {
        const job = await api.get(path`/v1/jobs/${first.id}`, { signal: ctx.signal });
        const st = paint(job);
        if (st.state !== 'running') {
          announce(`Job ${job.id} ${st.status}`);
          return;
        }
      } catch (exc) {
        if (ctx.signal.aborted) return;
        if (!(exc instanceof ApiError)) throw exc;
        fill(status, exc.status === 404
          ? message('info', 'The server no longer knows this job.')
          : errorBox(exc, 'Could not read the job:'));
        if (exc.status === 404) return;
      }
      const timer = setTimeout(() => { timers.delete(timer); poll(); }, POLL_MS[Math.min(attempt, POLL_MS.length - 1)]);
      attempt += 1;
      timers.add(timer);
    }
    if (jobState(paint(first)).state === 'running') poll();
    return item;
  }

  function show(job, { atTop = false } = {}) {
    if (shown.has(job.id)) return;
    shown.add(job.id);
    list.querySelector('li.empty')?.remove();
    if (atTop) list.prepend(drawJob(job));
    else list.append(drawJob(job));
  }

  async function loadJobs() {
    try {
      const listing = await api.get('/v1/jobs', { signal: ctx.signal });
      const jobs = Array.isArray(listing.data) ? listing.data : [];
      for (const job of jobs) show(job);
    } catch (exc) {
      if (ctx.signal.aborted) return;
      if (!(exc instanceof ApiError)) throw exc;
      fill(listStatus, exc.endpointMissing ? unavailable('Batch jobs') : errorBox(exc, 'Could not list the jobs:'));
    }
    if (!shown.size) list.append(h('li', { class: 'muted empty' }, 'No jobs yet. Start one above.'));
  }

  function track(job, file) {
    files[job.id] = file.name;
    const ids = Object.keys(files);
    for (const old of ids.slice(0, Math.max(0, ids.length - 100))) delete files[old];
    session.save('job-files', files);
    show(job, { atTop: true });
  }

  // Forms ----------------------------------------------------------------------------------------------------
  let models = [];
  try {
    models = await listModels(ctx.signal);
  } catch (exc) {
    if (ctx.signal.aborted) return () => {};
  }

  function jobForm({ id, heading, lead, fields, submitText, send, unavailableText }) {
    const status = h('div', { class: 'form-status' });
    const submit = h('button', { type: 'submit', class: 'button primary' }, submitText);
    const form = h('form', { class: 'card job-form', id, novalidate: true, onSubmit: async (event) => {
      event.preventDefault();
      clear(status);
      const file = form.querySelector('input[type=file]');
      if (!file.files.length) {
        status.append(message('error', 'Choose a file first.'));
        file.focus();
        return;
      }
      submit.disabled = true;
      try {
        await send(file.files[0], status);
      } catch (exc) {
        if (ctx.signal.aborted) return;
        if (!(exc instanceof ApiError)) throw exc;
        if (exc.endpointMissing) {
          fill(status, unavailable(unavailableText));
          return; // stays disabled: retrying cannot help
        }
        fill(status, errorBox(exc, 'The job was not started:'));
      }
      submit.disabled = false;
    } }, h('h2', {}, heading), h('p', { class: 'hint' }, lead), fields, status, h('div', { class: 'actions' }, submit));
    return form;
  }

  const column = (id, value, label, placeholder) => h('div', { class: 'field compact' }, h('label', { for: id }, label),
    h('input', { id, value, placeholder, maxlength: 200, autocomplete: 'off', spellcheck: 'false' }));

  const classifyFile = h('input', { type: 'file', id: 'job-file', accept: ACCEPT, required: true });
  const classifyModel = modelSelect(models, { id: 'job-model' });
  const classifyText = column('job-text-col', 'text', 'Text column');
  const classifyForm = jobForm({
    id: 'classify-job', heading: 'Classify a file', submitText: 'Start job', unavailableText: 'Batch classification',
    lead: 'CSV, TSV, JSON lines or Parquet with a text column. The results keep every column and add the label and score.',
    fields: [
      h('div', { class: 'field' }, h('label', { for: 'job-file' }, 'File'), classifyFile),
      h('div', { class: 'field' }, h('label', { for: 'job-model' }, 'Model'), classifyModel),
      classifyText],
    send: async (file, status) => {
      if (!classifyModel.value) {
        fill(status, message('error', 'Choose a model: train one first.'));
        return;
      }
      const form = new FormData();
      form.append('file', file);
      form.append('model', classifyModel.value);
      form.append('text_col', classifyText.querySelector('input').value.trim() || 'text');
      track(await api.upload('/v1/jobs', form, { signal: ctx.signal }), file);
    },
  });

  const trainFile = h('input', { type: 'file', id: 'train-file', accept: ACCEPT, required: true });
  const trainName = h('input', { id: 'train-name', required: true, maxlength: 64, autocomplete: 'off',
    pattern: '[a-z0-9][a-z0-9_.\\-]{0,63}', placeholder: 'e.g. tickets', 'aria-describedby': 'train-name-hint' });
  const trainEngine = h('select', { id: 'train-engine' },
    h('option', { value: 'linear' }, 'linear (fast, words and characters)'),
    h('option', { value: 'auto' }, 'auto (train several, keep the best)'),
    h('option', { value: 'embedding' }, 'embedding (meaning, few examples)'));
  const trainText = column('train-text-col', 'text', 'Text column');
  const trainLabel = column('train-label-col', '', 'Label column', 'labels or label');
  const trainForm = jobForm({
    id: 'train-job', heading: 'Train a model', submitText: 'Start training', unavailableText: 'Training from the UI',
    lead: 'Labelled examples: a text column and a label column. Training the same name again adds a version.',
    fields: [
      h('div', { class: 'field' }, h('label', { for: 'train-file' }, 'Training file'), trainFile),
      h('div', { class: 'field' }, h('label', { for: 'train-name' }, 'Model name'), trainName,
        h('p', { class: 'hint', id: 'train-name-hint' }, 'Lowercase letters, digits, ".", "_" and "-".')),
      h('div', { class: 'field' }, h('label', { for: 'train-engine' }, 'Engine'), trainEngine),
      h('div', { class: 'row' }, trainText, trainLabel)],
    send: async (file, status) => {
      const name = trainName.value.trim();
      if (!/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(name)) {
        fill(status, message('error', 'Model name: lowercase letters, digits, ".", "_" and "-" (up to 64).'));
        trainName.focus();
        return;
      }
      const form = new FormData();
      form.append('file', file);
      form.append('name', name);
      form.append('engine', trainEngine.value);
      form.append('text_col', trainText.querySelector('input').value.trim() || 'text');
      const labelCol = trainLabel.querySelector('input').value.trim();
      if (labelCol) form.append('label_col', labelCol);
      track(await api.upload('/v1/models', form, { signal: ctx.signal }), file);
    },
  });

  root.append(h('div', { class: 'grid-2' }, classifyForm, trainForm), listSection);
  await loadJobs();
  return () => { for (const timer of timers) clearTimeout(timer); };
}
