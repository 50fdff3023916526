// Where the E2B scenarios run: E2B itself when E2B_API_KEY is set, else the offline
// stand-in (test/standin/e2b), whose sandboxes are real runtimes in bubblewrap. Its cold
// start is an interpreter start, not E2B's snapshot resume: the rows say which target.
import { startStandin } from '../test/standin/e2b/index.ts'

export interface E2BTarget {
  name: 'e2b-standin' | 'e2b-cloud'
  /** The E2B_* variables blockgate's config reads to reach it. */
  env: Record<string, string>
  /** Control-plane calls and sandbox requests as the far side counted them (the stand-in only). */
  counters: { control(): number; data(): number } | null
  stop(): Promise<void>
}

export async function startE2BTarget(): Promise<E2BTarget> {
  if (process.env.E2B_API_KEY) {
    const env: Record<string, string> = {}
    for (const [name, value] of Object.entries(process.env))
      if (name.startsWith('E2B_') && value) env[name] = value
    return { name: 'e2b-cloud', env, counters: null, stop: async () => {} }
  }
  const standin = await startStandin()
  return {
    name: 'e2b-standin',
    env: {
      E2B_API_KEY: standin.apiKey,
      E2B_API_URL: standin.apiUrl,
      E2B_SANDBOX_URL: standin.sandboxUrl,
    },
    counters: { control: () => standin.calls.total(), data: () => standin.calls.dataTotal() },
    stop: () => standin.stop(),
  }
}
