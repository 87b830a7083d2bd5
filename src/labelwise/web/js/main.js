// The shell: sign-in gate, hash routes, navigation state and focus management.

import { setUnauthorizedHandler } from './api.js';
import { announce, clear, h } from './dom.js';
import { session } from './session.js';
import * as jobs from './views/jobs.js';
import * as model from './views/model.js';
import * as models from './views/models.js';
import * as playground from './views/playground.js';
import * as review from './views/review.js';
import * as signin from './views/signin.js';
import * as usage from './views/usage.js';

const ROUTES = [
  { pattern: /^\/playground$/, view: playground, nav: 'playground' },
  { pattern: /^\/models$/, view: models, nav: 'models' },
  { pattern: /^\/models\/([^/]+)(?:\/([^/]+))?$/, view: model, nav: 'models' },
  { pattern: /^\/jobs$/, view: jobs, nav: 'jobs' },
  { pattern: /^\/review$/, view: review, nav: 'review' },
  { pattern: /^\/usage$/, view: usage, nav: 'usage' },
];
const DEFAULT_ROUTE = '#/playground';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const account = document.getElementById('account');
let current = null; // {controller, cleanup}
let firstRender = true;

function leave() {
  if (!current) return;
  current.controller.abort();
  if (typeof current.cleanup === 'function') current.cleanup();
  current = null;
}

function setChrome(signedIn, navName) {
  nav.hidden = !signedIn;
  account.hidden = !signedIn;
  document.getElementById('key-chip').textContent = signedIn ? session.prefix : '';
  for (const link of nav.querySelectorAll('a[data-nav]')) {
    if (link.dataset.nav === navName) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** Move focus to the new page's heading so keyboard and screen-reader users start at the top of it. */
function focusHeading() {
  if (firstRender) {
    firstRender = false;
    return;
  }
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: false });
  }
}

async function show(view, params, navName, notice) {
  leave();
  const controller = new AbortController();
  current = { controller, cleanup: null };
  setChrome(view !== signin, navName);
  clear(main);
  document.title = `${view.title} · Labelwise`;
  const ctx = {
    params,
    signal: controller.signal,
    notice,
    navigate: (hash) => { window.location.hash = hash; },
    signedIn: () => route(),
  };
  try {
    const cleanup = await view.render(main, ctx);
    if (current && current.controller === controller) current.cleanup = cleanup;
    else if (typeof cleanup === 'function') cleanup();
  } catch (exc) {
    if (controller.signal.aborted) return;
    throw exc;
  }
  if (!controller.signal.aborted) {
    focusHeading();
    announce(`${view.title} page`);
  }
}

function route(notice) {
  const hash = window.location.hash;
  if (hash && !hash.startsWith('#/')) return; // an in-page anchor such as the skip link
  if (!session.key) {
    show(signin, [], null, notice);
    return;
  }
  const path = (hash || DEFAULT_ROUTE).slice(1);
  for (const entry of ROUTES) {
    const match = entry.pattern.exec(path);
    if (match) {
      show(entry.view, match.slice(1).map((part) => (part === undefined ? undefined : decodeURIComponent(part))),
        entry.nav);
      return;
    }
  }
  window.location.replace(DEFAULT_ROUTE);
}

export function signOut(notice) {
  session.signOut();
  if (window.location.hash !== DEFAULT_ROUTE) history.replaceState(null, '', DEFAULT_ROUTE);
  route(notice);
}

setUnauthorizedHandler(() => signOut('Your key is no longer accepted by the server. Sign in again.'));
document.getElementById('sign-out').addEventListener('click', () => {
  signOut('You are signed out. The key was removed from this tab.');
});
document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', () => route());
route();

// A last resort for a bug in a view: say so instead of leaving a blank page.
window.addEventListener('unhandledrejection', (event) => {
  if (event.reason && event.reason.name === 'AbortError') return;
  main.append(h('div', { class: ['message', 'error'], role: 'alert' },
    'Something went wrong in this page. Reload to try again.'));
});
