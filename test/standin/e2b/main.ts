// `npm run standin:e2b`: the stand-in as a process of its own, for tests in another
// process. Prints the SDK's variables, then serves until SIGTERM or SIGINT, killing every
// sandbox on the way out. STANDIN_API_PORT, STANDIN_SANDBOX_PORT and STANDIN_API_KEY fix
// the ports and the key (else the OS picks the ports and the key is random); STANDIN_PLAN
// sets the plan (hobby or pro). Exits 1, printing them, if the calls it served diverged from
// E2B's published spec (see contract.ts).
import { type Plan, startStandin, type Standin } from './index.ts'

const port = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined)

let standin: Standin
try {
  standin = await startStandin({
    apiPort: port('STANDIN_API_PORT'),
    sandboxPort: port('STANDIN_SANDBOX_PORT'),
    apiKey: process.env.STANDIN_API_KEY || undefined,
    plan: (process.env.STANDIN_PLAN || undefined) as Plan | undefined,
  })
} catch (error) {
  console.error(`E2B stand-in: ${(error as Error).message}`)
  process.exit(1)
}
console.log(`E2B_API_URL=${standin.apiUrl}`)
console.log(`E2B_SANDBOX_URL=${standin.sandboxUrl}`)
console.log(`E2B_API_KEY=${standin.apiKey}`)

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    void standin.stop().then(
      () => process.exit(0),
      (error: Error) => {
        console.error(`E2B stand-in: ${error.message}`)
        process.exit(1)
      },
    )
  })
}
