// The API key lives in sessionStorage: it ends with the tab, is never put in a URL, never in localStorage.

const KEY = 'labelwise.key';
const ADMIN = 'labelwise.admin';

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  signIn(key) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.removeItem(ADMIN);
  },
  signOut() {
    for (const name of Object.keys(sessionStorage)) {
      if (name.startsWith('labelwise.')) sessionStorage.removeItem(name);
    }
  },
  /** The key's public prefix (the part after `lw_`), or null for a key of another shape. */
  get keyPrefix() {
    const parts = (this.key || '').split('_');
    return parts.length >= 3 && parts[0] === 'lw' && parts[1] ? parts[1] : null;
  },
  /** The public part of the key (`lw_<prefix>`), safe to show; the secret is never displayed. */
  get prefix() {
    return this.keyPrefix ? `lw_${this.keyPrefix}` : 'API key';
  },
  /** Whether the key may change aliases: null until the server has told us (a 403 or a success). */
  get admin() {
    const value = sessionStorage.getItem(ADMIN);
    return value === null ? null : value === 'true';
  },
  set admin(value) {
    sessionStorage.setItem(ADMIN, String(value));
  },
  /** A small JSON value kept for this tab (form preferences, tracked jobs). */
  load(name, fallback) {
    try {
      const raw = sessionStorage.getItem(`labelwise.${name}`);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  save(name, value) {
    sessionStorage.setItem(`labelwise.${name}`, JSON.stringify(value));
  },
};
