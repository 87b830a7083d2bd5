// The one way the UI talks to the server: the public JSON API, with the user's key in the x-api-key header.

import { session } from './session.js';

const TIMEOUT_MS = 30000;

/** An error answered by the API (or a network failure, status 0), in the native error shape. */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    const error = body && typeof body === 'object' && body.error && typeof body.error === 'object' ? body.error : {};
    super(typeof error.message === 'string' && error.message ? error.message : fallback);
    this.name = 'ApiError';
    this.status = status;
    this.code = typeof error.code === 'string' ? error.code : null;
    this.param = typeof error.param === 'string' ? error.param : null;
    this.requestId = typeof error.request_id === 'string' ? error.request_id : null;
  }

  /** True when this server has no such endpoint at all (an API that is not built or not enabled). */
  get endpointMissing() {
    return this.status === 405 || (this.status === 404 && (this.code === 'not_found' || this.code === null));
  }
}

function fallbackMessage(status) {
  if (status === 0) return 'Could not reach the server. Check your connection and try again.';
  if (status === 401) return 'The API key was not accepted.';
  if (status === 403) return 'This key lacks the scope this action needs.';
  if (status === 429) return 'Too many requests: wait a moment and try again.';
  if (status >= 500) return `The server failed to answer (HTTP ${status}).`;
  return `The request failed (HTTP ${status}).`;
}

let onUnauthorized = () => {};

/** Called when the server stops accepting the key (revoked while signed in). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * One request. `json` sends a JSON body, `form` a FormData (multipart), `as` is 'json' (default), 'blob' or
 * 'response'. `key` overrides the signed-in key (used when signing in). Resolves to the parsed body.
 */
export async function request(method, path, { json, form, as = 'json', signal, key } = {}) {
  const headers = { Accept: as === 'json' ? 'application/json' : '*/*' };
  const apiKey = key ?? session.key;
  if (apiKey) headers['x-api-key'] = apiKey;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const signals = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let response;
  try {
    // Relative to the page, so the UI also works behind a reverse proxy that mounts Labelwise under a path.
    response = await fetch(new URL(path.replace(/^\//, ''), document.baseURI), {
      method, headers, body, signal: signals, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
    });
  } catch (exc) {
    if (signal && signal.aborted) throw exc; // the view was left: nobody is waiting for this answer
    throw new ApiError(0, null, fallbackMessage(0));
  }
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    const error = new ApiError(response.status, parsed, fallbackMessage(response.status));
    if (response.status === 401 && key === undefined) onUnauthorized(error);
    throw error;
  }
  if (as === 'response') return response;
  if (as === 'blob') return response.blob();
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  get: (path, options) => request('GET', path, options),
  post: (path, json, options) => request('POST', path, { ...options, json }),
  put: (path, json, options) => request('PUT', path, { ...options, json }),
  delete: (path, options) => request('DELETE', path, options),
  upload: (path, form, options) => request('POST', path, { ...options, form }),
  blob: (path, options) => request('GET', path, { ...options, as: 'blob' }),
};

/** `/v1/models/${name}` with every part encoded. */
export function path(strings, ...parts) {
  return strings.reduce((out, chunk, i) => out + chunk + (i < parts.length ? encodeURIComponent(parts[i]) : ''), '');
}
