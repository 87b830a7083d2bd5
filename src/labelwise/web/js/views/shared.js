// Pieces several views use: error boxes, model pickers, "not available" states.

import { ApiError, api, path } from '../api.js';
import { h, message } from '../dom.js';
import { session } from '../session.js';

/** An error box for a failed request: the server's message, then its code and request id for support. */
export function errorBox(error, lead) {
  if (!(error instanceof ApiError)) throw error;
  const details = [error.code, error.requestId && `request ${error.requestId}`].filter(Boolean).join(' · ');
  return message('error',
    lead ? h('strong', {}, lead, ' ') : null,
    h('span', { class: 'error-text' }, error.message),
    details ? h('span', { class: 'error-details' }, details) : null);
}

/** The message for an API this server does not offer (yet). */
export function unavailable(what) {
  return message('info', h('strong', {}, `${what} is not available on this server. `),
    'This Labelwise server does not offer this API yet; the rest of the UI works without it.');
}

/** Every model from GET /v1/models ([] when there are none). */
export async function listModels(signal) {
  const listing = await api.get('/v1/models', { signal });
  // Trained models only: the listing also names the embedding model (for OpenAI clients), which has no versions.
  return Array.isArray(listing.data) ? listing.data.filter((m) => Array.isArray(m.versions)) : [];
}

/**
 * A <select> of model references: each model (its production alias), its other aliases and its versions.
 * `withVersions` false offers the model names only.
 */
export function modelSelect(models, { id, selected, withVersions = true } = {}) {
  const select = h('select', { id, name: id });
  if (!models.length) {
    select.append(h('option', { value: '' }, 'No models yet'));
    select.disabled = true;
    return select;
  }
  for (const model of models) {
    const aliases = model.aliases || {};
    const production = aliases.production;
    const group = h('optgroup', { label: model.id });
    group.append(h('option', { value: model.id },
      production ? `${model.id} (production, ${production})` : model.id));
    if (withVersions) {
      for (const [alias, version] of Object.entries(aliases)) {
        if (alias === 'production') continue;
        group.append(h('option', { value: `${model.id}@${alias}` }, `${model.id}@${alias} (${version})`));
      }
      for (const version of model.versions || []) {
        group.append(h('option', { value: `${model.id}:${version.version}` }, `${model.id}:${version.version}`));
      }
    }
    select.append(group);
  }
  if (selected && [...select.options].some((option) => option.value === selected)) select.value = selected;
  return select;
}

/** The metrics shown in listings, from a version's `metrics` (`headline` when the trainer wrote one). */
export function headline(metrics) {
  if (!metrics || typeof metrics !== 'object') return {};
  return metrics.headline && typeof metrics.headline === 'object' ? metrics.headline : metrics;
}

/** A page heading with an optional line under it. */
export function pageHeader(title, lead, ...actions) {
  return h('div', { class: 'page-header' },
    h('div', {}, h('h1', {}, title), lead ? h('p', { class: 'lead' }, lead) : null),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

/**
 * Whether the signed-in key has the admin scope: asks `GET /v1/keys/{prefix}` (admin only) once per tab.
 * true or false once known; null when this server cannot tell (no keys API): the UI then learns it from a 403.
 */
export async function adminStatus(signal) {
  if (session.admin !== null || !session.keyPrefix) return session.admin;
  try {
    await api.get(path`/v1/keys/${session.keyPrefix}`, { signal });
    session.admin = true;
  } catch (exc) {
    if (!(exc instanceof ApiError)) throw exc;
    if (exc.status === 403) session.admin = false;
  }
  return session.admin;
}
