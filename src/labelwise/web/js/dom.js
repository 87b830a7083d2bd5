// Building DOM safely: every piece of data becomes a text node or a property, never HTML.
// Labels, texts and model names are user data, so nothing here ever assigns innerHTML.

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'multiple', 'indeterminate']);
const SVG_NS = 'http://www.w3.org/2000/svg';

function setProps(el, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name.startsWith('on')) {
      if (typeof value !== 'function') throw new TypeError(`${name} must be a function`);
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'style') {
      throw new TypeError('use classes or el.style: the Content-Security-Policy forbids style attributes');
    } else if (PROPERTIES.has(name)) {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

/** Append children: strings and numbers become text nodes; arrays are flattened; null/false are skipped. */
export function append(parent, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** `h('button', {class: 'button', onClick}, 'Save')`: an HTML element with properties and children. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  return append(el, children);
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  return append(el, children);
}

/** Remove every child of `el`. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

let counter = 0;
/** A unique element id, for label/for and aria-describedby pairs. */
export function uid(prefix = 'f') {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form field: returns {wrap, input} with the label tied to the control. */
export function field(label, control, hint) {
  const id = control.id || uid('field');
  control.id = id;
  const parts = [h('label', { for: id }, label)];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute('aria-describedby', hintId);
    parts.push(control, h('p', { class: 'hint', id: hintId }, hint));
  } else {
    parts.push(control);
  }
  return { wrap: h('div', { class: 'field' }, parts), input: control };
}

/** A message box: kind is 'error' (role=alert), 'info' or 'success' (role=status). */
export function message(kind, ...children) {
  const role = kind === 'error' ? 'alert' : 'status';
  return h('div', { class: ['message', kind], role }, children);
}

/** Tell screen-reader users something happened (route changes, saved actions). */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A new text node in a second step makes assistive technology read the same message again.
  requestAnimationFrame(() => { region.textContent = text; });
}

/** Replace the children of `el` with `children` (skipping null/false, as `append` does). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
