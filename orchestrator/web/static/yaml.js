// A tiny YAML writer for plain JSON values (objects, arrays, strings, numbers, booleans,
// null): enough to show a job's default run config in the editor. The server parses it back
// with yaml.safe_load; strings that YAML would read as something else are double-quoted
// (a JSON string is a valid YAML double-quoted scalar).

const PLAIN_UNSAFE = /^[\s\-?:,[\]{}#&*!|>'"%@`]|[\s:]$|: | #|[\n\r\t]/;
const RESERVED = /^(~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N|<<|=)$/;
const NUMBERISH = /^[-+]?(\.?[0-9]|0x|0o|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)/;

function scalar(value) {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    // YAML 1.1 (PyYAML) reads 1e+21 as a string: its floats need a dot before the exponent.
    if (Number.isFinite(value)) return String(value).replace(/^(-?\d+)e/, '$1.0e');
    return Number.isNaN(value) ? '.nan' : (value > 0 ? '.inf' : '-.inf');
  }
  const text = String(value);
  if (text === '' || PLAIN_UNSAFE.test(text) || RESERVED.test(text) || NUMBERISH.test(text)) {
    return JSON.stringify(text);
  }
  return text;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isEmpty = (v) => (Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0);

function lines(value, indent) {
  const pad = ' '.repeat(indent);
  const out = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      if ((isObject(item) || Array.isArray(item)) && !isEmpty(item)) {
        const inner = lines(item, indent + 2);
        out.push(`${pad}- ${inner[0].slice(indent + 2)}`, ...inner.slice(1));
      } else {
        out.push(`${pad}- ${inline(item)}`);
      }
    }
    return out;
  }
  for (const [key, item] of Object.entries(value)) {
    const k = scalar(key);
    if ((isObject(item) || Array.isArray(item)) && !isEmpty(item)) {
      out.push(`${pad}${k}:`, ...lines(item, indent + 2));
    } else {
      out.push(`${pad}${k}: ${inline(item)}`);
    }
  }
  return out;
}

function inline(value) {
  if (Array.isArray(value)) return '[]';
  if (isObject(value)) return '{}';
  return scalar(value);
}

/** ``value`` as YAML text ('' for an empty mapping or null, so the editor starts blank). */
export function toYaml(value) {
  if (value === null || value === undefined) return '';
  if (isObject(value) || Array.isArray(value)) {
    return isEmpty(value) ? '' : `${lines(value, 0).join('\n')}\n`;
  }
  return `${scalar(value)}\n`;
}
