// Structured log lines on stderr: one JSON object per line, easy to grep and to ship.
// BLOCKGATE_LOG_LEVEL (read by config.ts, applied at start) drops the levels below it.
type Fields = Record<string, unknown>

export const LOG_LEVELS = ['info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

let threshold = 0

export function setLogLevel(level: LogLevel): void {
  threshold = LOG_LEVELS.indexOf(level)
}

function write(level: LogLevel, message: string, fields: Fields): void {
  if (LOG_LEVELS.indexOf(level) < threshold) return
  const line: Fields = { time: new Date().toISOString(), level, message }
  for (const [key, value] of Object.entries(fields)) {
    line[key] = value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value
  }
  process.stderr.write(`${JSON.stringify(line)}\n`)
}

export const log = {
  info: (message: string, fields: Fields = {}) => write('info', message, fields),
  warn: (message: string, fields: Fields = {}) => write('warn', message, fields),
  error: (message: string, fields: Fields = {}) => write('error', message, fields),
}
