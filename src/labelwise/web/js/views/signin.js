// Sign in by pasting an API key; it is checked against the API before it is kept for this tab.

import { ApiError, api } from '../api.js';
import { clear, h, message } from '../dom.js';
import { session } from '../session.js';

export const title = 'Sign in';

function explain(error) {
  if (error.status === 401) {
    return 'That key was not accepted. Check that you pasted the whole key: it starts with lw_ and has no spaces. '
      + 'A revoked key is refused too.';
  }
  if (error.status === 403) {
    return 'That key is valid but lacks the classify scope this UI needs. Ask an admin for a key with the '
      + 'classify (or admin) scope.';
  }
  return error.message;
}

export function render(root, ctx) {
  const input = h('input', {
    id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', spellcheck: 'false',
    autocapitalize: 'off', required: true, placeholder: 'lw_…', 'aria-describedby': 'api-key-hint',
  });
  const show = h('input', { id: 'show-key', type: 'checkbox', onChange: () => { input.type = show.checked ? 'text' : 'password'; } });
  const status = h('div', { class: 'form-status', id: 'signin-status' });
  const submit = h('button', { type: 'submit', class: 'button primary wide' }, 'Sign in');

  async function onSubmit(event) {
    event.preventDefault();
    const key = input.value.trim();
    clear(status);
    if (!key) {
      status.append(message('error', 'Paste an API key first.'));
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Checking…';
    try {
      await api.get('/v1/models', { key, signal: ctx.signal });
      session.signIn(key);
      input.value = '';
      ctx.signedIn();
    } catch (exc) {
      if (ctx.signal.aborted) return;
      if (!(exc instanceof ApiError)) throw exc;
      status.append(message('error', explain(exc)));
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      input.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  }

  root.append(h('section', { class: 'signin' },
    h('div', { class: 'card signin-card' },
      h('h1', {}, 'Sign in to Labelwise'),
      h('p', { class: 'lead' }, 'Paste an API key to classify text, read training reports and manage models.'),
      ctx.notice ? message('info', ctx.notice) : null,
      h('form', { onSubmit, novalidate: true, 'aria-describedby': 'signin-status' },
        h('div', { class: 'field' },
          h('label', { for: 'api-key' }, 'API key'),
          input,
          h('p', { class: 'hint', id: 'api-key-hint' },
            'Kept only in this browser tab (session storage) until you sign out or close the tab. '
            + 'Create one with ', h('code', {}, 'labelwise keys create'), '.')),
        h('div', { class: 'check' }, show, h('label', { for: 'show-key' }, 'Show key')),
        status,
        submit))));
  input.focus();
}
