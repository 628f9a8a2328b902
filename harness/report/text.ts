/**
 * Making untrusted text (client output, event data) safe to print: no terminal escapes, no characters
 * that XML 1.0 forbids, no lone surrogates. Every reporter passes text through `cleanText`.
 */

// ECMA-48: CSI `ESC [ params intermediates final`, OSC `ESC ] ... BEL|ST`, and two-byte `ESC x`.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escapes is the point
const ANSI = /\u001b(?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|[@-Z\\-_])/g;

// XML 1.0 §2.2 Char excludes C0 controls other than TAB, LF, CR; C1 and DEL are legal but invisible.
// biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g;

// XML 1.0 §2.2 also excludes U+FFFE, U+FFFF and surrogates; `\p{Cs}` with the `u` flag matches only
// lone ones.
const NON_CHARS = /[\uFFFE\uFFFF]|\p{Cs}/gu;

/**
 * Cleans text for any report: strips ANSI escape sequences, turns CR LF and lone CR (progress meters)
 * into LF, shows other control characters as `\xNN`, and replaces lone surrogates and U+FFFE/U+FFFF with
 * U+FFFD. The result is legal in XML 1.0 and harmless on a terminal.
 */
export function cleanText(s: string): string {
  return s
    .replace(ANSI, '')
    .replace(/\r\n?/g, '\n')
    .replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(NON_CHARS, '\uFFFD');
}

/** The last `n` non-blank lines of `s`, cleaned. */
export function lastLines(s: string | undefined, n: number): string[] {
  if (!s) return [];
  const lines = cleanText(s)
    .split('\n')
    .filter((l) => l.trim() !== '');
  return lines.slice(Math.max(0, lines.length - n));
}

/** Cuts `s` to at most `max` characters, marking the cut with an ellipsis. */
export function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}

/** The bytes of a Buffer, or of a Buffer as JSON has it (`{type: 'Buffer', data: [...]}`, container events). */
function bufferBytes(v: unknown): Uint8Array | undefined {
  if (Buffer.isBuffer(v)) return v;
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as { type?: unknown; data?: unknown };
  if (o.type !== 'Buffer' || !Array.isArray(o.data) || Object.keys(o).length !== 2) return undefined;
  if (!o.data.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return undefined;
  return Uint8Array.from(o.data as number[]);
}

// Text is UTF-8 with no control characters other than TAB, LF and CR.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const BINARY = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/**
 * A message body (a Buffer in an event's data) as a report shows it: the text when it is UTF-8 text
 * (telemetry JSON reads as JSON, not as a byte array), else `{ type: 'Buffer', base64 }`. Other values
 * are returned as they are.
 */
export function readableBody(v: unknown): unknown {
  const bytes = bufferBytes(v);
  if (!bytes) return v;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (!BINARY.test(text)) return text;
  } catch {
    // not UTF-8: binary
  }
  return { type: 'Buffer', base64: Buffer.from(bytes).toString('base64') };
}
