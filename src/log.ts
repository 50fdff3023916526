// Structured log lines on stderr: one JSON object per line, easy to grep and to ship.
type Fields = Record<string, unknown>

function write(level: 'info' | 'warn' | 'error', message: string, fields: Fields): void {
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
