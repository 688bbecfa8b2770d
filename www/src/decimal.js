// Decimal numbers as people type them: where the locale writes a decimal comma ("0,01", as in
// German or French), a comma is the decimal separator; a point is taken as one everywhere, since
// a setting such as the learning rate has no thousands to group.

/** The decimal separator of `locale` ('.' or ','), e.g. ',' for 'de-DE'. */
export function decimalSeparator(locale) {
  const part = new Intl.NumberFormat(locale).formatToParts(1.5).find((p) => p.type === 'decimal');
  return part?.value ?? '.';
}

/**
 * The number `text` means in `locale`, or NaN when it is not one: "0,01" is 0.01 where the locale
 * writes a decimal comma; elsewhere a comma (a thousands separator, or a typo) makes it NaN rather
 * than a silently different number. Exponents ("1e-3") are accepted.
 */
export function parseDecimal(text, locale) {
  let s = String(text).trim().replace(/\u2212/g, '-');
  if (s.includes(',')) {
    if (decimalSeparator(locale) !== ',' || s.includes('.') || s.indexOf(',') !== s.lastIndexOf(',')) return NaN;
    s = s.replace(',', '.');
  }
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) return NaN;
  return Number(s);
}

/** `value` written with `locale`'s decimal separator, all its digits, no grouping: 0.01 → "0,01" in 'de-DE'. */
export function formatDecimal(value, locale) {
  const s = String(value);
  return decimalSeparator(locale) === ',' ? s.replace('.', ',') : s;
}
