// The run config editor: a plain <textarea> (no wrapping, so one text line is one gutter
// line) beside a line-number gutter whose lines with config errors are marked.

import { h } from './lib.js';

/**
 * @param {object} options
 * @param {string} options.id the textarea's id (for its <label>)
 * @param {() => void} options.onInput called on each edit
 * @param {() => void} [options.onSubmit] Ctrl/Cmd+Enter
 */
export function createEditor({ id, onInput, onSubmit }) {
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true', testid: 'gutter' });
  const area = h('textarea', {
    id, class: 'code', testid: 'config-editor', spellcheck: 'false', wrap: 'off',
    autocomplete: 'off', autocapitalize: 'off', rows: 18,
    'aria-describedby': `${id}-help`,
  });
  const element = h('div', { class: 'editor' }, gutter, area);
  let lineCount = 0;
  let marks = new Map(); // line number -> messages
  let tabTraps = true; // Tab indents; after Escape it moves focus as usual

  function countLines() {
    let n = 1;
    const text = area.value;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n += 1;
    return n;
  }

  function renderGutter() {
    const n = Math.max(countLines(), ...marks.keys(), 1);
    const frag = document.createDocumentFragment();
    for (let line = 1; line <= n; line += 1) {
      const messages = marks.get(line);
      const div = document.createElement('div');
      div.className = messages ? 'ln err' : 'ln';
      div.textContent = String(line);
      div.dataset.line = String(line);
      if (messages) {
        div.dataset.testid = 'gutter-error';
        div.title = messages.join('\n');
      }
      frag.append(div);
    }
    gutter.replaceChildren(frag);
    lineCount = n;
    gutter.scrollTop = area.scrollTop;
  }

  area.addEventListener('input', () => {
    if (countLines() !== lineCount) renderGutter();
    onInput();
  });
  area.addEventListener('scroll', () => { gutter.scrollTop = area.scrollTop; });
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey) && onSubmit) {
      event.preventDefault();
      onSubmit();
    } else if (event.key === 'Escape') {
      tabTraps = false;
    } else if (event.key === 'Tab' && tabTraps && !event.shiftKey) {
      event.preventDefault();
      // execCommand keeps the browser's undo history; setRangeText is the fallback.
      if (!document.execCommand || !document.execCommand('insertText', false, '  ')) {
        area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
        area.dispatchEvent(new Event('input'));
      }
    }
  });
  area.addEventListener('focus', () => { tabTraps = true; });

  return {
    element,
    area,
    get value() { return area.value; },
    set value(text) {
      area.value = text;
      renderGutter();
    },
    /** Mark the lines of ``errors`` ([{line, path, message}]) in the gutter. */
    mark(errors) {
      marks = new Map();
      for (const err of errors) {
        if (!Number.isInteger(err.line) || err.line < 1) continue;
        const text = err.path ? `${err.path}: ${err.message}` : err.message;
        marks.set(err.line, [...(marks.get(err.line) || []), text]);
      }
      renderGutter();
    },
    /** Select line ``n`` (1-based) and scroll it into view. */
    focusLine(n) {
      const lines = area.value.split('\n');
      const line = Math.min(Math.max(1, n), lines.length);
      let start = 0;
      for (let i = 0; i < line - 1; i += 1) start += lines[i].length + 1;
      area.focus();
      area.setSelectionRange(start, start + lines[line - 1].length);
      const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 18;
      area.scrollTop = Math.max(0, (line - 3) * lineHeight);
    },
  };
}
