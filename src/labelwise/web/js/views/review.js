// Review: the low-confidence queue of a model, abstained predictions first; one click or one key press per label
// records feedback, and one action sends the queue to a Label Studio project.

import { ApiError, api, path } from '../api.js';
import { announce, fill, h, message } from '../dom.js';
import { percent } from '../format.js';
import { session } from '../session.js';
import { errorBox, listModels, modelSelect, pageHeader, unavailable } from './shared.js';

export const title = 'Review';

const SHORTCUTS = '123456789abcdefghijklmnopqr'; // 's' is skip, so it is left out
const SKIP_KEY = 's';

/** The items of `GET /v1/review`: [{requestId, index, key, text, scores: [{label, score}], predicted, abstained,
 * confidence}], abstained ones first (the server sends them first; the order is kept within each group). */
export function queueItems(body) {
  const list = body && Array.isArray(body.items) ? body.items : [];
  return list.map((item) => ({
    requestId: String(item.request_id ?? ''),
    index: Number.isInteger(item.index) ? item.index : 0,
    key: `${item.request_id}:${item.index ?? 0}`,
    text: String(item.text ?? ''),
    version: item.model_version ? String(item.model_version) : '',
    scores: Array.isArray(item.labels) ? item.labels.filter((l) => l && typeof l === 'object') : [],
    predicted: Array.isArray(item.predicted) ? item.predicted.map(String) : [],
    abstained: item.abstained === true,
    confidence: typeof item.confidence === 'number' ? item.confidence : null,
  })).filter((item) => item.requestId)
    .map((item, order) => ({ item, order }))
    .sort((a, b) => Number(b.item.abstained) - Number(a.item.abstained) || a.order - b.order)
    .map(({ item }) => item);
}

/** The form that sends the model's review queue to a Label Studio project (`POST /v1/review/label-studio/export`). */
function labelStudioForm(select, signal) {
  const input = h('input', { id: 'label-studio-project', type: 'number', min: '1', step: '1', required: true,
    inputmode: 'numeric', value: session.load('label-studio-project', '') });
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'button' }, 'Send to Label Studio');
  async function send(event) {
    event.preventDefault();
    const project = Number.parseInt(input.value, 10);
    if (!Number.isInteger(project) || project < 1) {
      fill(status, message('error', 'Project: enter the id of a Label Studio project (a whole number from 1).'));
      return;
    }
    session.save('label-studio-project', String(project));
    button.disabled = true;
    fill(status, h('span', { class: 'muted' }, 'Sending…'));
    try {
      const sent = await api.post('/v1/review/label-studio/export', { model: select.value, project }, { signal });
      fill(status, message('success', `Sent ${sent.sent} task${sent.sent === 1 ? '' : 's'} `
        + `(${sent.abstained} abstained) to Label Studio project ${sent.project}`
        + (sent.already_there ? `; ${sent.already_there} already there.` : '.')));
    } catch (exc) {
      if (signal.aborted) return;
      if (!(exc instanceof ApiError)) throw exc;
      fill(status, exc.endpointMissing ? unavailable('Sending to Label Studio') : errorBox(exc, 'Not sent:'));
    } finally {
      button.disabled = false;
    }
  }
  return h('form', { class: 'card toolbar', id: 'label-studio-export', onSubmit: send },
    h('div', { class: 'field compact' }, h('label', { for: 'label-studio-project' }, 'Label Studio project'), input),
    button, status);
}

export async function render(root, ctx) {
  root.append(pageHeader('Review', 'Confirm or correct the predictions the model was least sure about. '
    + 'Each answer is recorded as feedback for the next training run.'));
  let models = [];
  try {
    models = await listModels(ctx.signal);
  } catch (exc) {
    if (ctx.signal.aborted) return undefined;
    root.append(errorBox(exc, 'Could not list the models:'));
    return undefined;
  }
  if (!models.length) {
    root.append(message('info', 'No models yet: the review queue fills once a trained model serves requests.'));
    return undefined;
  }
  const select = modelSelect(models, { id: 'review-model', withVersions: false, selected: session.load('review-model', '') });
  const stage = h('div', { class: 'review-stage', 'aria-live': 'polite' });
  root.append(h('div', { class: 'card toolbar' }, h('div', { class: 'field compact' },
    h('label', { for: 'review-model' }, 'Model'), select)), labelStudioForm(select, ctx.signal), stage);

  let items = [];
  let index = 0;
  let labels = [];
  let busy = false;
  const reviewed = new Set(session.load('reviewed', []));

  function drawItem() {
    if (index >= items.length) {
      fill(stage, h('div', { class: 'card empty-state', tabindex: -1 }, h('h2', {}, 'All caught up'),
        h('p', {}, items.length ? `You reviewed ${items.length} item${items.length === 1 ? '' : 's'}.`
          : 'Nothing to review. The queue lists logged predictions whose text was kept: the server needs '
            + 'log_raw_text (or log_raw_text_keys) set for texts to be kept.')));
      stage.firstChild.focus();
      return;
    }
    const item = items[index];
    const best = item.scores[0];
    const remaining = items.length - index;
    const status = h('div', { class: 'form-status' });
    const buttons = labels.map((label, i) => h('button', {
      type: 'button', class: ['button', 'label-choice', item.predicted.includes(label) && 'suggested'],
      dataset: { label }, 'aria-keyshortcuts': SHORTCUTS[i] || null,
      onClick: () => choose(label, status),
    }, SHORTCUTS[i] ? h('kbd', { 'aria-hidden': 'true' }, SHORTCUTS[i]) : null, label));
    fill(stage, h('article', { class: 'card review-item', 'aria-labelledby': 'review-title', tabindex: -1,
      dataset: { requestId: item.requestId, index: String(item.index), abstained: String(item.abstained) } },
      h('div', { class: 'job-head' }, h('h2', { id: 'review-title' },
        `Item ${index + 1} of ${items.length}`, h('span', { class: 'muted small' }, ` · ${remaining} left`)),
        item.abstained ? h('span', { class: ['badge', 'status-running'] }, best
          ? `abstained (best: ${best.label} ${percent(Number(best.score), 0)})` : 'abstained')
          : best ? h('span', { class: 'badge' }, `model: ${best.label} ${percent(Number(best.score), 0)}`) : null),
      item.version ? h('p', { class: 'muted small' }, `Predicted by version ${item.version}`) : null,
      h('blockquote', { class: 'review-text' }, item.text),
      h('p', { class: 'hint' }, 'Pick the right label (keys 1–9 work too), or press S to skip.'),
      h('div', { class: 'label-choices', role: 'group', 'aria-label': 'Correct label' }, buttons,
        h('button', { type: 'button', class: 'button ghost', 'aria-keyshortcuts': SKIP_KEY,
          onClick: () => { index += 1; drawItem(); } }, h('kbd', { 'aria-hidden': 'true' }, 'S'), 'Skip')),
      status));
    // The next item takes the focus (the pressed button is gone, or the model picker had it): number keys then
    // work at once, and screen readers read the new item.
    stage.firstChild.focus();
  }

  async function choose(label, status) {
    if (busy) return;
    busy = true;
    try {
      const item = items[index];
      await api.post('/v1/feedback', { request_id: item.requestId, index: item.index, labels: [label] },
        { signal: ctx.signal });
      // The server keeps listing a reviewed prediction; the tab remembers it so it does not come back.
      reviewed.add(item.key);
      session.save('reviewed', [...reviewed].slice(-2000));
      announce(`Recorded ${label}`);
      index += 1;
      drawItem();
    } catch (exc) {
      if (ctx.signal.aborted) return;
      if (!(exc instanceof ApiError)) throw exc;
      fill(status, exc.endpointMissing ? unavailable('Recording feedback') : errorBox(exc, 'Not recorded:'));
    } finally {
      busy = false;
    }
  }

  async function load() {
    const name = select.value;
    session.save('review-model', name);
    fill(stage, h('p', { class: 'muted' }, 'Loading the queue…'));
    try {
      const [queue, detail] = await Promise.all([
        api.get(`/v1/review?model=${encodeURIComponent(name)}`, { signal: ctx.signal }),
        api.get(path`/v1/models/${name}`, { signal: ctx.signal }),
      ]);
      items = queueItems(queue).filter((item) => !reviewed.has(item.key));
      const served = detail.versions.find((v) => (v.aliases || []).includes('production')) || detail.versions[0];
      labels = served.labels || [...new Set(items.flatMap((item) => item.scores.map((s) => s.label)))];
      index = 0;
      drawItem();
    } catch (exc) {
      if (ctx.signal.aborted) return;
      if (!(exc instanceof ApiError)) throw exc;
      fill(stage, exc.endpointMissing ? unavailable('The review queue')
        : exc.status === 403 ? message('error', 'The review queue shows logged texts, so it needs a key with the admin '
          + 'scope. Sign in with an admin key to review predictions.')
          : errorBox(exc, 'Could not load the queue:'));
    }
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const target = event.target;
    if (target instanceof HTMLElement && target.closest('input, textarea, select, [contenteditable]')) return;
    if (index >= items.length) return;
    const key = event.key.toLowerCase();
    if (key === SKIP_KEY) {
      event.preventDefault();
      index += 1;
      drawItem();
      return;
    }
    const position = SHORTCUTS.indexOf(key);
    if (position >= 0 && position < labels.length) {
      event.preventDefault();
      stage.querySelectorAll('.label-choice')[position]?.click();
    }
  }

  select.addEventListener('change', load);
  document.addEventListener('keydown', onKey);
  await load();
  return () => document.removeEventListener('keydown', onKey);
}
