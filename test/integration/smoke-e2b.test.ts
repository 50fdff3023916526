// `npm run smoke:e2b` without E2B_API_KEY runs against the stand-in: CI proves the script
// works, so people with a key can trust what it reports on real E2B.
import { expect, test } from 'bun:test'
import { resolve } from 'node:path'
import { PROJECT_ROOT } from '../../src/config.ts'

test('npm run smoke:e2b passes against the stand-in and leaves no sandbox behind', async () => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env))
    if (value !== undefined && !name.startsWith('E2B_')) env[name] = value
  const smoke = Bun.spawn({
    cmd: [process.execPath, 'run', resolve(PROJECT_ROOT, 'test/smoke/e2b.ts')],
    cwd: PROJECT_ROOT,
    env,
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, exit] = await Promise.all([
    new Response(smoke.stdout).text(),
    new Response(smoke.stderr).text(),
    smoke.exited,
  ])
  expect({ exit, stderr }).toEqual({ exit: 0, stderr: '' })
  expect(stdout).toContain('smoke:e2b against e2b-standin')
  expect(stdout).not.toContain('DIFF')
  expect(stdout.match(/^parity ok /gm)?.length).toBe(9) // 5 blocks, 4 of them in both formats
  expect(stdout).toMatch(/timing: cold [\d.]+ ms .*warm p50 [\d.]+ ms/)
  expect(stdout).toContain('sandboxes left behind: none')
  expect(stdout).toContain('smoke:e2b: passed')
}, 120_000)
