// The e2b backend cold against warm, in both modes, through a blockgate server:
// - template: a sandbox from blockgate's template, its runtime server up when it boots,
// - code-interpreter: E2B's stock template, the runtime uploaded into it on creation.
// Against the offline stand-in, or against E2B itself when E2B_API_KEY is set (the rows'
// target says which). E2B API calls and sandbox round trips per run are counted, not
// assumed: by blockgate, and by the stand-in as the far side.
import type { BenchContext } from './context.ts'
import { startE2BServer } from './blockgate-server.ts'
import { coldAndWarm } from './cold-warm.ts'
import type { Row } from './stats.ts'

export function e2bColdAndWarm(mode: 'template' | 'code-interpreter') {
  return async (ctx: BenchContext): Promise<Row[]> => {
    const target = await ctx.e2bTarget()
    const server = await startE2BServer(target.env, mode, target.counters !== null)
    try {
      return await coldAndWarm(ctx, {
        backend: `e2b-${mode}`,
        target: target.name,
        server,
        coldPerRound: ctx.count(1, 2),
        calls: {
          blockgate: () => Object.values(server.pool.lifecycle.calls).reduce((a, b) => a + b, 0),
          ...(target.counters
            ? { control: target.counters.control, data: target.counters.data }
            : {}),
        },
      })
    } finally {
      await server.stop()
    }
  }
}
