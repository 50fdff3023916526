// The plugin lists of the two languages must agree: same kinds, same order, same tags.
import { expect, test } from 'bun:test'
import { SERIALIZERS } from '../../../serializers/index.ts'
import { PYTHON } from '../../support/python.ts'
import { PROJECT_ROOT } from '../../../src/config.ts'

test('serializers/index.ts and serializers/registry.py list the same kinds under the same tags', () => {
  const script =
    'import json\nfrom serializers.registry import KINDS\nprint(json.dumps([[k.name, list(k.tags)] for k in KINDS]))'
  const result = Bun.spawnSync({ cmd: [PYTHON, '-c', script], cwd: PROJECT_ROOT, stderr: 'pipe' })
  if (result.exitCode !== 0) throw new Error(result.stderr.toString())
  const python = JSON.parse(result.stdout.toString()) as [string, number[]][]
  const typescript: [string, number[]][] = SERIALIZERS.map((s) => [s.kind, [...s.tags]])
  expect(typescript).toEqual(python)
})
