// Number and date formatting shared by the views.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function isNumber(value) {
  return typeof value === 'number' && Number.isFinite(value);
}

/** 0.9234 -> "92.3%". */
export function percent(value, digits = 1) {
  return isNumber(value) ? `${(value * 100).toFixed(digits)}%` : 'n/a';
}

/** A metric: integers with separators, fractions with three decimals, "n/a" for undefined ones. */
export function metric(value) {
  if (!isNumber(value)) return 'n/a';
  return Number.isInteger(value) && Math.abs(value) > 1 ? integer.format(value) : value.toFixed(3);
}

export function count(value) {
  return isNumber(value) ? integer.format(value) : 'n/a';
}

export function milliseconds(value) {
  if (!isNumber(value)) return 'n/a';
  return value < 10 ? `${value.toFixed(2)} ms` : `${Math.round(value)} ms`;
}

export function date(value) {
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? String(value ?? '') : d.toLocaleDateString(undefined, { dateStyle: 'medium' });
}

export function dateTime(value) {
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime())
    ? String(value ?? '')
    : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}
