// Baseline 1: the block run in-process without isolation (Roboflow Inference's local mode),
// on the same payloads, by bench/in_process.py. The floor every isolated figure is put against.
import { resolve } from 'node:path'
import type { BenchContext } from './context.ts'
import { PYTHON } from './payloads.ts'
import { rowOf, type Row } from './stats.ts'
import { LARGE_BUFFER_MALLOC } from '../src/backends/local/worker.ts'

export async function inProcessExec(ctx: BenchContext): Promise<Row[]> {
  ctx.progress(`in-process exec (Roboflow's local mode): cold and warm, every payload`)
  const args = [ctx.payloads.dir, ctx.rounds, ctx.count(5, 20), ctx.count(20, 100)].map(String)
  const child = Bun.spawn({
    cmd: [PYTHON, resolve(import.meta.dir, 'in_process.py'), ...args],
    env: { ...process.env, ...LARGE_BUFFER_MALLOC }, // the allocator settings a worker runs with
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const output = await new Response(child.stdout).text()
  if ((await child.exited) !== 0) throw new Error('bench/in_process.py failed')
  const titles = new Map(ctx.payloads.blocks.map((payload) => [payload.id, payload.title]))
  return output
    .trim()
    .split('\n')
    .map(
      (line) => JSON.parse(line) as { payload: string; phase: 'cold' | 'warm'; rounds: number[][] },
    )
    .map(({ payload, phase, rounds }) =>
      rowOf(
        {
          scenario: phase === 'cold' ? 'cold-start' : 'warm-start',
          name: `in-process exec: ${phase === 'cold' ? 'compile the block and run it' : 'run the loaded block'}, ${titles.get(payload)} (no isolation)`,
          backend: 'in-process-exec',
          target: 'local',
          payload,
        },
        rounds,
      ),
    )
}
