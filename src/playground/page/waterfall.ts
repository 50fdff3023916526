// A run's timings as a small waterfall: queue, then acquire, then execute (the block's own
// code inside it), against the request's total.

interface Timings {
  queue: number
  acquire: number
  execute: number
  user_code?: number
  total: number
}

export function drawWaterfall(host: HTMLElement, t: Timings): void {
  const scale = Math.max(t.total, t.queue + t.acquire + t.execute, 0.001)
  const executeStart = t.queue + t.acquire
  // The block's code runs inside execute, after the runtime decoded the inputs: drawn at its end.
  const rows: [string, number, number][] = [
    ['queue', 0, t.queue],
    ['acquire', t.queue, t.acquire],
    ['execute', executeStart, t.execute],
    ['user_code', executeStart + t.execute - (t.user_code ?? 0), t.user_code ?? 0],
    ['total', 0, t.total],
  ]
  host.replaceChildren(
    ...rows.map(([name, start, ms]) => {
      const row = document.createElement('div')
      row.className = 'bar-row'
      row.dataset.phase = name
      const label = document.createElement('span')
      label.textContent = name.replace('_', ' ')
      const track = document.createElement('div')
      track.className = 'track'
      const bar = document.createElement('div')
      bar.className = `bar ${name}`
      bar.style.left = `${(start / scale) * 100}%`
      bar.style.width = `${(ms / scale) * 100}%`
      track.append(bar)
      const value = document.createElement('span')
      value.textContent = `${ms.toFixed(ms < 10 ? 2 : 1)} ms`
      row.append(label, track, value)
      return row
    }),
  )
}
