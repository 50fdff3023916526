// Structured log lines on stderr: one JSON object per line, easy to grep and to ship.
// BLOCKGATE_LOG_LEVEL (read by config.ts, applied at start) drops the levels below it.
type Fields = Record<string, unknown>

export const LOG_LEVELS = ['info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export type LogSink = (line: string) => void

let threshold = 0
let sink: LogSink = (line) => process.stderr.write(line)

export function setLogLevel(level: LogLevel): void {
  threshold = LOG_LEVELS.indexOf(level)
}

/** Sends whole lines (each ending in a newline) to `next` instead of stderr; returns the sink it replaced. For tests. */
export function setLogSink(next: LogSink): LogSink {
  const previous = sink
  sink = next
  return previous
}

// JSON.stringify escapes C0 controls (so \n, \r and ESC never leave a string) but keeps DEL, the
// C1 controls (NEL among them) and U+2028/U+2029 raw, which some viewers and splitters treat as
// line breaks. They can only occur inside strings, so escaping them leaves the same JSON value.
const RAW_BREAKS = /[\u007f-\u009f\u2028\u2029]/g
const escapeUnicode = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`

function write(level: LogLevel, message: string, fields: Fields, always = false): void {
  if (!always && LOG_LEVELS.indexOf(level) < threshold) return
  const line: Fields = { time: new Date().toISOString(), level, message }
  for (const [key, value] of Object.entries(fields)) {
    line[key] =
      value instanceof Error
        ? { name: value.name, message: value.message, stack: value.stack }
        : value
  }
  sink(`${JSON.stringify(line).replace(RAW_BREAKS, escapeUnicode)}\n`)
}

export const BLOCK_TEXT_MAX_CHARS = 500
// Controls, line separators and the bidirectional overrides that reorder what a terminal shows.
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const CONTROL_NAMES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * Text a block or a client chose, fit for a log field: at most BLOCK_TEXT_MAX_CHARS characters,
 * every control character and line separator written out as an escape (`\n`, `\u001b`), so the
 * value stays one line even once a viewer decodes the JSON (`jq -r`) and no terminal codes run.
 */
export function blockText(text: string): string {
  let kept = text
  if (text.length > BLOCK_TEXT_MAX_CHARS) {
    // Never end on half a surrogate pair.
    const end = /[\ud800-\udbff]/.test(text[BLOCK_TEXT_MAX_CHARS - 1]!)
      ? BLOCK_TEXT_MAX_CHARS - 1
      : BLOCK_TEXT_MAX_CHARS
    kept = `${text.slice(0, end)}… (${text.length - end} more characters)`
  }
  return kept.replace(CONTROLS, (char) => CONTROL_NAMES[char] ?? escapeUnicode(char))
}

export const log = {
  info: (message: string, fields: Fields = {}) => write('info', message, fields),
  warn: (message: string, fields: Fields = {}) => write('warn', message, fields),
  error: (message: string, fields: Fields = {}) => write('error', message, fields),
  /** An info line shown whatever the level: what no one can learn another way. */
  always: (message: string, fields: Fields = {}) => write('info', message, fields, true),
}
