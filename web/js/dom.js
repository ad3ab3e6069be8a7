// Building DOM nodes without HTML strings: every piece of text becomes a text
// node, so user data (titles, messages, names) can never turn into markup.

/**
 * h('button', {class: 'x', onclick: fn, 'aria-label': '...'}, 'text', childNode)
 * Attributes whose value is null/undefined/false are left out; `true` sets an
 * empty attribute. Functions under `on*` become event listeners.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends strings (as text), nodes and nested arrays; skips null/false. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Sets an element's text (never markup). */
export function text(el, value) {
  el.textContent = value === null || value === undefined ? '' : String(value);
  return el;
}

/** A labelled form field: <div class="field"><label for=id>label</label>input</div>. */
let fieldSeq = 0;
export function field(label, input, hint) {
  const id = input.id || `f${++fieldSeq}`;
  input.id = id;
  const parts = [h('label', { for: id }, label), input];
  if (hint) {
    const hintId = `${id}-hint`;
    input.setAttribute('aria-describedby', hintId);
    parts.push(h('small', { id: hintId, class: 'hint' }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

/** A random id for idempotency keys (requestId, clientMsgId). */
export function uid() {
  // getRandomValues works outside secure contexts too (randomUUID does not).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
