// Playground: classify one text with a trained model or with zero-shot labels, see ranked scores and why.

import { ApiError, api } from '../api.js';
import { announce, clear, fill, h, message, uid } from '../dom.js';
import { milliseconds, percent } from '../format.js';
import { session } from '../session.js';
import { errorBox, listModels, modelSelect, pageHeader } from './shared.js';

export const title = 'Playground';

// The draft text stays in memory only (texts may be sensitive); preferences are kept for the tab.
let draftText = '';
const MAX_EXPLANATIONS = 12;

function defaults() {
  return {
    mode: 'model',
    model: '',
    topK: 5,
    threshold: 0,
    explain: false,
    multiLabel: false,
    categories: [{ key: '', description: '' }, { key: '', description: '' }],
  };
}

/**
 * The explanation of the top label from `explanations` of `/v1/classify` (sent with `explain: true`):
 * {label, method, words: [{word, weight}]} with the words that raised its score most first, or null.
 */
export function explanationOf(result) {
  const all = Array.isArray(result.explanations) ? result.explanations : [];
  const top = (result.predicted || [])[0] ?? ((result.labels || [])[0] || {}).label;
  const chosen = all.find((e) => e && e.label === top) || all[0];
  if (!chosen || !Array.isArray(chosen.terms)) return null;
  const words = chosen.terms
    .map((t) => ({ word: String(t.term ?? ''), weight: Number(t.weight) }))
    .filter((t) => t.word && Number.isFinite(t.weight))
    .sort((a, b) => b.weight - a.weight)
    .slice(0, MAX_EXPLANATIONS);
  return { label: String(chosen.label), method: String(chosen.method || ''), words };
}

const METHODS = {
  linear: 'weights of the linear model: how much each word added to the score',
  leave_one_out: 'how much the score drops when the word is left out',
};

function renderResult(result) {
  const predicted = new Set(result.predicted || []);
  const labels = Array.isArray(result.labels) ? result.labels : [];
  const decision = predicted.size
    ? [...predicted].map((label) => h('span', { class: 'chip chip-strong' }, label))
    : h('span', { class: 'muted' }, 'No label reached its threshold');
  const bars = h('ol', { class: 'bars', 'aria-label': 'Labels ranked by score' }, labels.map((item) => {
    const chosen = predicted.has(item.label);
    const fill = h('span', { class: ['bar-fill', chosen && 'chosen'] });
    fill.style.width = `${Math.max(0, Math.min(1, Number(item.score) || 0)) * 100}%`;
    return h('li', { class: ['bar-row', chosen && 'chosen'] },
      h('span', { class: 'bar-label' }, h('span', { class: 'bar-name' }, item.label), chosen ? h('span', { class: 'visually-hidden' }, ' (decision)') : null),
      h('span', { class: 'bar-score' }, percent(Number(item.score))),
      h('span', { class: 'bar-track', 'aria-hidden': 'true' }, fill));
  }));
  const why = explanationOf(result);
  const explanation = why
    ? h('section', { class: 'explain', id: 'explanation', 'aria-labelledby': 'explain-title', dataset: { label: why.label } },
      h('h3', { id: 'explain-title' }, 'Words that pushed ', h('span', { class: 'explain-label' }, why.label)),
      why.method ? h('p', { class: 'hint explain-method' }, METHODS[why.method] || why.method) : null,
      why.words.length
        ? h('ul', { class: 'chips' }, why.words.map((w) => h('li', {
          class: ['chip', 'word', w.weight < 0 ? 'against' : 'for'],
        }, h('span', { class: 'term' }, w.word), ' ',
        h('span', { class: 'weight' }, `${w.weight > 0 ? '+' : ''}${w.weight.toFixed(2)}`))))
        : h('p', { class: 'muted small' }, 'No word of this text moved the score.'))
    : null;
  const source = result.model ? `${result.model}${result.model_version ? `:${result.model_version}` : ''}` : 'zero-shot';
  return [
    h('div', { class: 'decision' }, h('span', { class: 'decision-title' }, 'Decision'), decision),
    bars,
    explanation,
    h('dl', { class: 'meta' },
      h('div', {}, h('dt', {}, 'Model'), h('dd', {}, source)),
      h('div', {}, h('dt', {}, 'Latency'), h('dd', { class: 'latency' }, milliseconds(Number(result.latency_ms)))),
      result.request_id ? h('div', {}, h('dt', {}, 'Request'), h('dd', { class: 'mono' }, result.request_id)) : null),
  ];
}

function categoryRow(item, index, onRemove) {
  const keyId = uid('label');
  const descId = uid('desc');
  const key = h('input', { id: keyId, class: 'cat-key', value: item.key, maxlength: 100, placeholder: 'e.g. billing', autocomplete: 'off' });
  const description = h('input', {
    id: descId, class: 'cat-desc', value: item.description, maxlength: 150,
    placeholder: 'optional: what this label means', autocomplete: 'off',
  });
  key.addEventListener('input', () => { item.key = key.value; });
  description.addEventListener('input', () => { item.description = description.value; });
  return h('li', { class: 'cat-row' },
    h('div', { class: 'field compact' }, h('label', { for: keyId }, `Label ${index + 1}`), key),
    h('div', { class: 'field compact grow' }, h('label', { for: descId }, `Description ${index + 1}`), description),
    h('button', { type: 'button', class: 'button ghost small remove', onClick: onRemove,
      'aria-label': `Remove label ${index + 1}` }, 'Remove'));
}

export async function render(root, ctx) {
  const prefs = { ...defaults(), ...session.load('playground', {}) };
  const save = () => session.save('playground', prefs);
  root.append(pageHeader('Playground', 'Classify a text with a trained model, or with labels you describe (zero-shot).'));

  let models = [];
  let loadError = null;
  try {
    models = await listModels(ctx.signal);
  } catch (exc) {
    if (ctx.signal.aborted) return undefined;
    loadError = exc;
  }
  if (!models.length && prefs.mode === 'model') prefs.mode = 'zeroshot';

  const result = h('div', { class: 'result-body', id: 'result' },
    h('p', { class: 'muted empty' }, 'Results appear here: every label with its score, best first.'));
  const resultRegion = h('section', { class: 'card result', 'aria-labelledby': 'result-title' },
    h('h2', { id: 'result-title' }, 'Result'),
    h('div', { 'aria-live': 'polite', 'aria-atomic': 'true', id: 'result-live' }, result));

  // Mode switch ------------------------------------------------------------------------------------------------
  const modeModel = h('input', { type: 'radio', name: 'mode', id: 'mode-model', value: 'model', checked: prefs.mode === 'model' });
  const modeZero = h('input', { type: 'radio', name: 'mode', id: 'mode-zeroshot', value: 'zeroshot', checked: prefs.mode === 'zeroshot' });
  const modeSwitch = h('fieldset', { class: 'segmented' },
    h('legend', {}, 'Classify with'),
    h('div', { class: 'segments' },
      modeModel, h('label', { for: 'mode-model' }, 'A trained model'),
      modeZero, h('label', { for: 'mode-zeroshot' }, 'Zero-shot labels')));

  const select = modelSelect(models, { id: 'model', selected: prefs.model });
  select.addEventListener('change', () => { prefs.model = select.value; save(); });
  const modelPanel = h('div', { class: 'panel', id: 'model-panel' },
    h('div', { class: 'field' }, h('label', { for: 'model' }, 'Model'), select,
      loadError ? errorBox(loadError, 'Could not list the models:') : null,
      !loadError && !models.length
        ? h('p', { class: 'hint' }, 'No trained models yet: train one on the Jobs page or with ', h('code', {}, 'labelwise train'), '.')
        : null));

  const catList = h('ol', { class: 'cat-list' });
  const drawCategories = () => {
    fill(catList, ...prefs.categories.map((item, i) => categoryRow(item, i, () => {
      prefs.categories.splice(i, 1);
      if (!prefs.categories.length) prefs.categories.push({ key: '', description: '' });
      drawCategories();
      save();
    })));
  };
  drawCategories();
  const addLabel = h('button', { type: 'button', class: 'button ghost small', id: 'add-label', onClick: () => {
    prefs.categories.push({ key: '', description: '' });
    drawCategories();
    catList.querySelector('li:last-child .cat-key').focus();
  } }, '+ Add label');
  const multi = h('input', { type: 'checkbox', id: 'multi-label', checked: prefs.multiLabel });
  const zeroPanel = h('fieldset', { class: 'panel plain', id: 'zeroshot-panel' },
    h('legend', {}, 'Labels'),
    h('p', { class: 'hint' }, 'Name each label; a short description helps the model tell similar labels apart.'),
    catList,
    h('div', { class: 'row' }, addLabel,
      h('div', { class: 'check' }, multi, h('label', { for: 'multi-label' }, 'A text may have several labels'))));

  const showMode = () => {
    const zero = modeZero.checked;
    prefs.mode = zero ? 'zeroshot' : 'model';
    modelPanel.hidden = zero;
    zeroPanel.hidden = !zero;
    save();
  };
  modeModel.addEventListener('change', showMode);
  modeZero.addEventListener('change', showMode);

  // Text and options ---------------------------------------------------------------------------------------------
  const text = h('textarea', {
    id: 'text', name: 'text', rows: 6, required: true, value: draftText, 'aria-describedby': 'text-hint',
    placeholder: 'Paste or type a text, e.g. a support ticket or a review…',
  });
  const counter = h('span', { id: 'text-count' }, `${draftText.length.toLocaleString()} characters`);
  text.addEventListener('input', () => {
    draftText = text.value;
    counter.textContent = `${text.value.length.toLocaleString()} characters`;
  });
  const topK = h('input', { id: 'top-k', type: 'number', min: 1, max: 100, step: 1, value: String(prefs.topK), inputmode: 'numeric' });
  const threshold = h('input', { id: 'threshold', type: 'number', min: 0, max: 1, step: 0.05, value: String(prefs.threshold), inputmode: 'decimal' });
  const explain = h('input', { id: 'explain', type: 'checkbox', checked: prefs.explain });
  const options = h('details', { class: 'options' },
    h('summary', {}, 'Options'),
    h('div', { class: 'options-grid' },
      h('div', { class: 'field compact' }, h('label', { for: 'top-k' }, 'Labels to show (top k)'), topK),
      h('div', { class: 'field compact' }, h('label', { for: 'threshold' }, 'Hide scores under'), threshold),
      h('div', { class: 'check' }, explain, h('label', { for: 'explain' }, 'Explain the decision (words that matter)'))));

  const formStatus = h('div', { class: 'form-status', id: 'form-status' });
  const submit = h('button', { type: 'submit', class: 'button primary', id: 'classify' }, 'Classify');

  function buildRequest() {
    const body = { text: text.value };
    const k = Number.parseInt(topK.value, 10);
    const t = Number.parseFloat(threshold.value);
    if (!text.value.trim()) return { problem: 'Type or paste a text to classify.', focus: text };
    if (!(k >= 1 && k <= 100)) return { problem: 'Labels to show: a whole number from 1 to 100.', focus: topK };
    if (!(t >= 0 && t <= 1)) return { problem: 'Hide scores under: a number from 0 to 1.', focus: threshold };
    body.top_k = k;
    body.threshold = t;
    prefs.topK = k;
    prefs.threshold = t;
    prefs.explain = explain.checked;
    prefs.multiLabel = multi.checked;
    if (explain.checked) body.explain = true;
    if (modeZero.checked) {
      const filled = prefs.categories.map((c) => ({ key: c.key.trim(), description: c.description.trim() })).filter((c) => c.key);
      const names = filled.map((c) => c.key);
      if (filled.length < 2) return { problem: 'Zero-shot needs at least two labels.', focus: catList.querySelector('.cat-key') };
      if (new Set(names).size !== names.length) return { problem: 'Each label name must be different.', focus: catList.querySelector('.cat-key') };
      if (filled.some((c) => c.description)) body.categories = filled;
      else body.labels = names;
      if (multi.checked) body.multi_label = true;
    } else {
      if (!select.value) return { problem: 'Choose a model, or switch to zero-shot labels.', focus: select };
      body.model = select.value;
      prefs.model = select.value;
    }
    save();
    return { body };
  }

  async function onSubmit(event) {
    event.preventDefault();
    clear(formStatus);
    text.removeAttribute('aria-invalid');
    const { body, problem, focus } = buildRequest();
    if (problem) {
      formStatus.append(message('error', problem));
      if (focus) {
        focus.setAttribute('aria-invalid', 'true');
        focus.focus();
      }
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Classifying…';
    result.setAttribute('aria-busy', 'true');
    try {
      const answer = await api.post('/v1/classify', body, { signal: ctx.signal });
      fill(result, ...renderResult(answer).filter(Boolean));
      const best = (answer.predicted || [])[0];
      announce(best === undefined ? 'Classified: no label reached its threshold' : `Classified: ${best}`);
    } catch (exc) {
      if (ctx.signal.aborted) return;
      if (!(exc instanceof ApiError)) throw exc;
      fill(result, errorBox(exc, modeZero.checked ? 'Zero-shot failed:' : 'Classification failed:'));
    } finally {
      submit.disabled = false;
      submit.textContent = 'Classify';
      result.removeAttribute('aria-busy');
    }
  }

  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  const form = h('form', { class: 'card classify-form', id: 'classify-form', onSubmit, novalidate: true },
    modeSwitch, modelPanel, zeroPanel,
    h('div', { class: 'field' },
      h('div', { class: 'label-row' }, h('label', { for: 'text' }, 'Text'), h('span', { class: 'hint' }, counter)),
      text,
      h('p', { class: 'hint', id: 'text-hint' }, 'Press Ctrl+Enter (⌘+Enter on a Mac) to classify.')),
    options,
    formStatus,
    h('div', { class: 'actions' }, submit));
  showMode();
  root.append(h('div', { class: 'grid-2' }, form, resultRegion));
  return undefined;
}
