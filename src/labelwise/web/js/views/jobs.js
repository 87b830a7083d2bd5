// Jobs: classify a whole file in the background, train a model from a file, watch progress, download results.

import { ApiError, api, path, request } from '../api.js';
import { announce, clear, fill, h, message } from '../dom.js';
import { dateTime, percent } from '../format.js';
import { session } from '../session.js';
import { errorBox, listModels, modelSelect, pageHeader, unavailable } from './shared.js';

export const title = 'Jobs';

const DONE = new Set(['succeeded', 'completed', 'complete', 'done', 'finished', 'success']);
const FAILED = new Set(['failed', 'error', 'cancelled', 'canceled', 'expired']);
const ACCEPT = '.csv,.jsonl,.json,.parquet,.txt';
const POLL_MS = [1000, 1000, 2000, 2000, 3000, 5000];

/** {state: 'running'|'done'|'failed', status, fraction (0..1 or null), error} from a job body of any shape. */
export function jobState(job) {
  const status = String(job.status ?? job.state ?? 'queued').toLowerCase();
  let fraction = null;
  if (typeof job.progress === 'number') fraction = job.progress > 1 ? job.progress / 100 : job.progress;
  else if (job.progress && typeof job.progress === 'object') {
    const p = job.progress;
    const done = p.done ?? p.rows_done ?? p.processed ?? p.completed;
    const total = p.total ?? p.rows_total;
    if (typeof p.fraction === 'number') fraction = p.fraction;
    else if (typeof done === 'number' && typeof total === 'number' && total > 0) fraction = done / total;
  } else {
    const done = job.rows_done ?? job.processed ?? job.done;
    const total = job.rows_total ?? job.total;
    if (typeof done === 'number' && typeof total === 'number' && total > 0) fraction = done / total;
  }
  const state = DONE.has(status) ? 'done' : FAILED.has(status) ? 'failed' : 'running';
  if (state === 'done') fraction = 1;
  const error = job.error && typeof job.error === 'object' ? job.error.message : job.error;
  return { state, status, fraction: fraction === null ? null : Math.max(0, Math.min(1, fraction)), error };
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
    const type = response.headers.get('content-type') || '';
    const extension = type.includes('json') ? 'jsonl' : type.includes('parquet') ? 'parquet' : 'csv';
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: named ? named[1] : `labelwise-${job.id}.${extension}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (exc) {
    if (signal.aborted) return;
    fill(status, errorBox(exc, 'Could not download the results:'));
  }
}

export async function render(root, ctx) {
  root.append(pageHeader('Jobs', 'Classify a whole file in the background, or train a model from labelled examples.'));
  let tracked = session.load('jobs', []);
  const timers = new Set();
  const list = h('ul', { class: 'job-list', 'aria-live': 'polite' });
  const listSection = h('section', { class: 'section', 'aria-labelledby': 'jobs-title' },
    h('h2', { id: 'jobs-title' }, 'Jobs in this session'), list);

  function drawJob(entry) {
    const item = h('li', { class: 'card job', dataset: { job: entry.id } });
    const status = h('div', { class: 'form-status' });
    function paint(job) {
      const st = jobState(job);
      const actions = [];
      if (st.state === 'done' && entry.kind === 'classify') {
        actions.push(h('button', { type: 'button', class: 'button primary small',
          onClick: () => download(entry, ctx.signal, status) }, 'Download results'));
      }
      if (st.state === 'done' && entry.kind === 'train' && entry.name) {
        actions.push(h('a', { class: 'button small', href: `#/models/${encodeURIComponent(entry.name)}` }, 'Open model'));
      }
      fill(item, 
        h('div', { class: 'job-head' },
          h('strong', {}, entry.kind === 'train' ? `Train ${entry.name || 'model'}` : `Classify ${entry.file || 'file'}`),
          h('span', { class: ['badge', `status-${st.state}`] }, st.status)),
        h('p', { class: 'muted small' }, `Job ${entry.id} · started ${dateTime(entry.started)}`),
        progressBar(st.fraction, `Progress of job ${entry.id}`),
        st.fraction === null ? null : h('p', { class: 'small' }, percent(st.fraction, 0)),
        st.error ? message('error', String(st.error)) : null,
        actions.length ? h('div', { class: 'actions' }, actions) : null,
        status);
      return st;
    }
    paint({ status: entry.status || 'queued' });
    let attempt = 0;
    async function poll() {
      try {
        const job = await api.get(path`/v1/jobs/${entry.id}`, { signal: ctx.signal });
        const st = paint(job);
        if (st.state !== 'running') {
          entry.status = st.status;
          session.save('jobs', tracked);
          announce(`Job ${entry.id} ${st.status}`);
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
    if (!DONE.has(entry.status) && !FAILED.has(entry.status)) poll();
    return item;
  }

  function drawList() {
    fill(list, ...(tracked.length ? tracked.map(drawJob)
      : [h('li', { class: 'muted' }, 'No jobs yet. Jobs you start here are listed until you close the tab.')]));
  }

  function track(entry) {
    tracked = [entry, ...tracked.filter((j) => j.id !== entry.id)].slice(0, 20);
    session.save('jobs', tracked);
    list.querySelector('li.muted')?.remove();
    list.prepend(drawJob(entry));
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

  const classifyFile = h('input', { type: 'file', id: 'job-file', accept: ACCEPT, required: true });
  const classifyModel = modelSelect(models, { id: 'job-model' });
  const classifyForm = jobForm({
    id: 'classify-job', heading: 'Classify a file', submitText: 'Start job', unavailableText: 'Batch classification',
    lead: 'CSV, JSONL or Parquet with a text column. The results keep every column and add the label and score.',
    fields: [
      h('div', { class: 'field' }, h('label', { for: 'job-file' }, 'File'), classifyFile),
      h('div', { class: 'field' }, h('label', { for: 'job-model' }, 'Model'), classifyModel)],
    send: async (file) => {
      const form = new FormData();
      form.append('file', file);
      if (classifyModel.value) form.append('model', classifyModel.value);
      const job = await api.upload('/v1/jobs', form, { signal: ctx.signal });
      track({ id: String(job.id), kind: 'classify', file: file.name, started: new Date().toISOString(), status: job.status });
    },
  });

  const trainFile = h('input', { type: 'file', id: 'train-file', accept: ACCEPT, required: true });
  const trainName = h('input', { id: 'train-name', required: true, maxlength: 64, autocomplete: 'off',
    pattern: '[a-z0-9][a-z0-9_.\\-]{0,63}', placeholder: 'e.g. tickets', 'aria-describedby': 'train-name-hint' });
  const trainEngine = h('select', { id: 'train-engine' },
    h('option', { value: 'auto' }, 'auto (train several, keep the best)'),
    h('option', { value: 'linear' }, 'linear (fast, words and characters)'),
    h('option', { value: 'embedding' }, 'embedding (meaning, few examples)'));
  const trainForm = jobForm({
    id: 'train-job', heading: 'Train a model', submitText: 'Start training', unavailableText: 'Training from the UI',
    lead: 'Labelled examples: a text column and a label column. Training the same name again adds a version.',
    fields: [
      h('div', { class: 'field' }, h('label', { for: 'train-file' }, 'Training file'), trainFile),
      h('div', { class: 'field' }, h('label', { for: 'train-name' }, 'Model name'), trainName,
        h('p', { class: 'hint', id: 'train-name-hint' }, 'Lowercase letters, digits, ".", "_" and "-".')),
      h('div', { class: 'field' }, h('label', { for: 'train-engine' }, 'Engine'), trainEngine)],
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
      const answer = await api.upload('/v1/models', form, { signal: ctx.signal });
      const job = answer && answer.job ? answer.job : answer;
      if (job && job.id !== undefined && !job.version) {
        track({ id: String(job.id), kind: 'train', name, file: file.name, started: new Date().toISOString(), status: job.status });
      } else {
        fill(status, message('success', `Trained ${name}. `, h('a', { href: `#/models/${encodeURIComponent(name)}` }, 'Open it'), '.'));
      }
    },
  });

  root.append(h('div', { class: 'grid-2' }, classifyForm, trainForm), listSection);
  drawList();
  return () => { for (const timer of timers) clearTimeout(timer); };
}
