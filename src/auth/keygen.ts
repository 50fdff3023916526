// `npm run keygen -- --id NAME --workspace WS [--workspace WS2] [--rps N] [--concurrent N]`:
// prints a new random API key (give it to the client; it is shown only now) and the entry
// to add to the keys file, which holds only the key's sha256 digest.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { digestOf, keyFileSchema } from './keys.ts'

const { values } = parseArgs({
  options: {
    id: { type: 'string' },
    workspace: { type: 'string', multiple: true },
    rps: { type: 'string' },
    concurrent: { type: 'string' },
  },
})

const key = `bg_${randomBytes(24).toString('base64url')}`
const entry = {
  id: values.id ?? `key-${randomBytes(4).toString('hex')}`,
  sha256: digestOf(key).toString('hex'),
  workspaces: values.workspace ?? ['default'],
  limits: {
    ...(values.rps ? { requests_per_second: Number(values.rps) } : {}),
    ...(values.concurrent ? { concurrent_runs: Number(values.concurrent) } : {}),
  },
}
const checked = keyFileSchema.safeParse({ keys: [entry] })
if (!checked.success) {
  console.error(
    `keygen: ${checked.error.issues.map((i) => `${i.path.slice(2).join('.')}: ${i.message}`).join('; ')}`,
  )
  process.exit(2)
}
console.error(
  `API key (give it to the client; it is not stored anywhere):\n  ${key}\n\nAdd this entry to "keys" in your BLOCKGATE_API_KEYS_FILE:`,
)
console.log(JSON.stringify(entry, null, 2))
