// What every scenario gets: the mode (quick or full), how many rounds to measure, the
// payloads, and the servers and E2B target, started once on first use and stopped at the end.
import { progress } from './progress.ts'
import { startE2BTarget, type E2BTarget } from './e2b-target.ts'
import { startLocalServer, type BlockgateServer } from './blockgate-server.ts'
import { buildPayloads, type Payloads } from './payloads.ts'

export interface BenchContext {
  quick: boolean
  /** Rounds every scenario measures in; a figure is the median over them. */
  rounds: number
  /** Samples per round: the quick count or the full one. */
  count(quick: number, full: number): number
  payloads: Payloads
  e2bTarget(): Promise<E2BTarget>
  localServer(): Promise<BlockgateServer>
  progress(text: string): void
  close(): Promise<void>
}

export function createContext(quick: boolean): BenchContext {
  const payloads = buildPayloads()
  let e2b: Promise<E2BTarget> | null = null
  let local: Promise<BlockgateServer> | null = null
  return {
    quick,
    rounds: quick ? 3 : 5,
    count: (quickCount, fullCount) => (quick ? quickCount : fullCount),
    payloads,
    e2bTarget: () => (e2b ??= startE2BTarget()),
    localServer: () => (local ??= startLocalServer()),
    progress,
    async close() {
      await Promise.allSettled([
        local?.then((server) => server.stop()),
        e2b?.then((target) => target.stop()),
      ])
      payloads.remove()
    },
  }
}
