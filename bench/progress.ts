// Progress on stderr while the bench runs (stdout stays for the summary): each line says
// how long the bench has been going and what it is measuring now.
const startedAt = performance.now()

export function progress(text: string): void {
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)
  process.stderr.write(`[${seconds} s] ${text}\n`)
}

export function elapsedSeconds(): number {
  return (performance.now() - startedAt) / 1000
}
