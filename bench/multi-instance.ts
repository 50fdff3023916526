// What a multi-instance deployment costs (issue 17), with real processes on loopback: a
// redis-server, blockgate servers as separate processes (test/support/server-process.ts), and
// HAProxy running the shipped deploy/haproxy.cfg. Every run carries an API key, so the quota
// path runs: per process without Redis, one Lua script plus a release in Redis with it.
//   1. The same warm no-op run at concurrency 1 on one instance without Redis and on one
//      joined to Redis: p50 and p95 of each, and what Redis adds (target: ≤ 0.2 ms p50).
//   2. Runs/s at concurrency 8 through HAProxy to three instances against one instance direct.
//      Three instances share this machine's cores: this measures the balancer's hop and the
//      extra processes, not scale.
// Rounds interleave (no Redis, Redis; direct, balanced) so drift hits both sides alike.
import { RedisClient } from 'bun'
import { createHash } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { startDeployment, type Deployment } from '../test/support/deployment.ts'
import { type Haproxy, startHaproxy } from '../test/support/haproxy.ts'
import { type ServerProcess, startServer } from '../test/support/server-process.ts'
import type { BenchContext } from './context.ts'
import { runLoad, type LoadRound } from './load.ts'
import { runBody } from './payloads.ts'
import { median, rowOf, type Row } from './stats.ts'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
/** Keys as keygen makes them (random-looking), fixed so each run hashes them alike. */
const KEYS = Array.from(
  { length: 12 },
  (_, i) => `bg_${sha256(`bench-multi-instance-${i}`).slice(0, 32)}`,
)
const BALANCED_CONCURRENCY = 8
/** Batches per round, alternating sides, when measuring what Redis adds. */
const BATCHES = 4
const cores = availableParallelism()
const NOTE_SCALE = `three instances on ${cores} core${cores === 1 ? '' : 's'}: this measures overhead (the balancer's hop, the extra processes), not scale`

/** Every instance alike: the local pool with two workers, all the one workspace's; keys that quotas never refuse. */
function instanceEnv(): Record<string, string> {
  // A local-only server: E2B variables of the bench's environment blanked (empty is unset).
  const blanked = Object.fromEntries(
    Object.keys(process.env)
      .filter((name) => name.startsWith('E2B_'))
      .map((name) => [name, '']),
  )
  return {
    ...blanked,
    WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE: 'local',
    BLOCKGATE_LOG_LEVEL: 'warn', // no audit line per run
    BLOCKGATE_MIN_WARM_WORKERS: '0',
    BLOCKGATE_MAX_WORKERS: '2',
    BLOCKGATE_TENANT_MAX_WORKERS: '2',
    BLOCKGATE_API_KEYS: JSON.stringify({
      keys: KEYS.map((key, i) => ({
        id: `bench-${i}`,
        sha256: sha256(key),
        workspaces: ['bench'],
        limits: { requests_per_second: 1_000_000, burst: 1_000_000, concurrent_runs: 10_000 },
      })),
    }),
  }
}

/** Why this scenario cannot run here, or null. */
function missingTools(): string | null {
  const missing = [
    Bun.which('redis-server') ? null : 'redis-server',
    Bun.which('haproxy', { PATH: `${process.env.PATH}:/usr/sbin` }) ? null : 'haproxy',
  ].filter(Boolean)
  return missing.length === 0
    ? null
    : `${missing.join(' and ')} not installed (npm run setup installs ${missing.length === 1 ? 'it' : 'them'} on Debian)`
}

export async function multiInstance(ctx: BenchContext): Promise<Row[]> {
  const missing = missingTools()
  if (missing) throw new Error(missing)
  const noop = runBody(ctx.payloads.blocks.find((payload) => payload.id === 'no-op')!, 'bench')
  const env = instanceEnv()
  let alone: ServerProcess | null = null
  let deployment: Deployment | null = null
  let haproxy: Haproxy | null = null
  try {
    ctx.progress(
      'multi-instance: a redis-server, three joined instances, one without Redis, HAProxy',
    )
    const [started, joined] = await Promise.allSettled([
      startServer(env),
      startDeployment({ instances: 3, env }),
    ])
    if (started.status === 'fulfilled') alone = started.value
    if (joined.status === 'fulfilled') deployment = joined.value
    if (alone === null || deployment === null)
      throw [started, joined].find((r) => r.status === 'rejected')!.reason
    const instances = deployment.instances
    haproxy = await startHaproxy({ servers: instances.map((s) => new URL(s.url).host) })
    return [
      ...(await redisCost(ctx, noop, alone, instances[0]!, deployment.redis.url)),
      ...(await balancedThroughput(ctx, noop, instances, haproxy)),
    ]
  } finally {
    await haproxy?.stop()
    await Promise.allSettled([alone?.stop(), deployment?.stop()])
  }
}

/** (1) The same warm run on one instance without Redis and on one joined to Redis. */
async function redisCost(
  ctx: BenchContext,
  body: Uint8Array,
  alone: ServerProcess,
  joined: ServerProcess,
  redisUrl: string,
): Promise<Row[]> {
  const key = [KEYS[0]!]
  const without = `${alone.url}/v1/run`
  const withRedis = `${joined.url}/v1/run`
  // Warm-up: both workers forked, the block loaded in each.
  for (const url of [without, withRedis]) await runLoad(url, body, 100, 2, undefined, key)
  const requests = ctx.count(400, 2000)
  const off: LoadRound[] = []
  const on: LoadRound[] = []
  const commandsBefore = await redisCommands(redisUrl)
  for (let round = 0; round < ctx.rounds; round++) {
    ctx.progress(
      `multi-instance: round ${round + 1} of ${ctx.rounds}, ${requests} warm no-op runs with an API key at concurrency 1 without Redis and as many with it, in ${BATCHES} alternating batches`,
    )
    // A difference of a fraction of a millisecond on a shared machine: each round is
    // batches in the order off, on, on, off, … so what drifts within a round hits both alike.
    const batches = { off: [] as LoadRound[], on: [] as LoadRound[] }
    for (let batch = 0; batch < BATCHES; batch++) {
      const order = batch % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)
      for (const side of order)
        batches[side].push(
          await runLoad(
            side === 'off' ? without : withRedis,
            body,
            requests / BATCHES,
            1,
            undefined,
            key,
          ),
        )
    }
    off.push(joinBatches(batches.off))
    on.push(joinBatches(batches.on))
  }
  const commands = minus(await redisCommands(redisUrl), commandsBefore)
  const perRun = (count: number) => +(count / (requests * ctx.rounds)).toFixed(2)
  const row = (form: string, what: string, rounds: LoadRound[]) =>
    rowOf(
      {
        scenario: 'multi-instance',
        name: `local-zygote: warm no-op run with an API key, concurrency 1, one instance ${what}`,
        backend: 'local-zygote',
        target: 'local',
        payload: 'no-op',
        form,
        concurrency: 1,
      },
      rounds.map((r) => r.latencies_ms),
      rounds.map((r) => r.seconds),
    )
  const base = row('no-redis', 'without Redis (quotas per process)', off)
  const joinedRow = row(
    'redis',
    'joined to Redis (BLOCKGATE_REDIS_URL: quota admitted by a script in a real redis-server, slot released after)',
    on,
  )
  joinedRow.extra = {
    added_p50_ms: +(joinedRow.p50_ms - base.p50_ms).toFixed(3),
    added_p95_ms: +(joinedRow.p95_ms - base.p95_ms).toFixed(3),
    // Paired by round: less of the drift between rounds.
    added_p50_ms_per_round_median: +median(
      on.map((r, i) => median(r.latencies_ms) - median(off[i]!.latencies_ms)),
    ).toFixed(3),
    // Round trips: each script call is one, and so is each command outside a script.
    redis_script_calls_per_run: perRun(commands.scripts),
    // Every command Redis ran, the scripts' own included.
    redis_commands_per_run: perRun(commands.all),
    target: '≤ 0.2 ms p50 added',
  }
  ctx.progress(
    `multi-instance: Redis adds ${joinedRow.extra.added_p50_ms} ms p50, ${joinedRow.extra.added_p95_ms} ms p95 (target ≤ 0.2 ms p50); Redis script calls per run: ${joinedRow.extra.redis_script_calls_per_run}`,
  )
  return [base, joinedRow, await redisFloor(ctx, redisUrl)]
}

/** (2) Runs/s through HAProxy to three instances against one instance direct, same client. */
async function balancedThroughput(
  ctx: BenchContext,
  body: Uint8Array,
  instances: ServerProcess[],
  haproxy: Haproxy,
): Promise<Row[]> {
  // One key per instance (the balancer hashes each key to one), sent in turn by the client.
  const keys = await oneKeyPerInstance(instances.length, haproxy)
  const direct = `${instances[0]!.url}/v1/run`
  const balanced = `${haproxy.url}/v1/run`
  await runLoad(direct, body, 100, BALANCED_CONCURRENCY, undefined, keys)
  await runLoad(balanced, body, 200, BALANCED_CONCURRENCY, undefined, keys)
  const requests = ctx.count(400, 2000)
  const one: LoadRound[] = []
  const three: LoadRound[] = []
  for (let round = 0; round < ctx.rounds; round++) {
    ctx.progress(
      `multi-instance: round ${round + 1} of ${ctx.rounds}, ${requests} no-op runs at concurrency ${BALANCED_CONCURRENCY}, one instance direct then HAProxy to ${keys.length === instances.length ? 'three instances' : `${keys.length} of the instances (keys hashed there)`}`,
    )
    one.push(await runLoad(direct, body, requests, BALANCED_CONCURRENCY, undefined, keys))
    three.push(await runLoad(balanced, body, requests, BALANCED_CONCURRENCY, undefined, keys))
  }
  const row = (form: string, what: string, rounds: LoadRound[]) =>
    rowOf(
      {
        scenario: 'multi-instance',
        name: `local-zygote: no-op runs over HTTP, concurrency ${BALANCED_CONCURRENCY}, ${what}`,
        backend: 'local-zygote',
        target: 'local',
        payload: 'no-op',
        form,
        concurrency: BALANCED_CONCURRENCY,
      },
      rounds.map((r) => r.latencies_ms),
      rounds.map((r) => r.seconds),
    )
  const base = row('direct-1', 'one instance (joined to Redis), direct', one)
  const through = row(
    'haproxy-3',
    `HAProxy (deploy/haproxy.cfg) to ${keys.length} instances joined to Redis, ${keys.length} keys`,
    three,
  )
  through.extra = {
    instances_reached: keys.length,
    throughput_vs_direct: +((through.ops_per_s ?? 0) / (base.ops_per_s ?? 1)).toFixed(3),
    note: NOTE_SCALE,
  }
  base.extra = { note: NOTE_SCALE }
  ctx.progress(
    `multi-instance: ${base.ops_per_s} runs/s direct to one instance, ${through.ops_per_s} through HAProxy to ${keys.length} (${NOTE_SCALE})`,
  )
  return [base, through]
}

const joinBatches = (batches: LoadRound[]): LoadRound => ({
  latencies_ms: batches.flatMap((b) => b.latencies_ms),
  overhead_ms: batches.flatMap((b) => b.overhead_ms),
  seconds: batches.reduce((sum, b) => sum + b.seconds, 0),
})

/**
 * Keys the balancer sends to different instances, one per instance it reached: a /readyz
 * with each key through it, and the instance HAProxy's log line for it names.
 */
async function oneKeyPerInstance(instances: number, haproxy: Haproxy): Promise<string[]> {
  const byInstance = new Map<number, string>()
  for (const [i, key] of KEYS.entries()) {
    if (byInstance.size === instances) break
    const path = `/readyz?where=${i}`
    const response = await fetch(`${haproxy.url}${path}`, {
      headers: { authorization: `Bearer ${key}` },
    })
    await response.arrayBuffer()
    const line = new RegExp(
      `blockgate_by_authorization/\\D+(\\d+) .*GET ${path.replace('?', '\\?')} `,
    )
    let server: number | null = null
    for (const end = performance.now() + 2000; server === null && performance.now() < end; ) {
      const found = haproxy.log().match(line)
      if (found) server = Number(found[1])
      else await Bun.sleep(20)
    }
    if (server !== null && !byInstance.has(server)) byInstance.set(server, key)
  }
  if (byInstance.size === 0) throw new Error('HAProxy logged no request: cannot tell where keys go')
  return [...byInstance.values()]
}

/** Connection chatter (clients connecting, probes, this count itself): not the runs'. */
const CHATTER = new Set(['info', 'hello', 'ping', 'client', 'select', 'auth', 'command'])

interface CommandCounts {
  /** Every command but the chatter, the ones scripts ran included. */
  all: number
  /** EVALSHA and EVAL calls. */
  scripts: number
}

const minus = (a: CommandCounts, b: CommandCounts): CommandCounts => ({
  all: a.all - b.all,
  scripts: a.scripts - b.scripts,
})

/** Commands the redis-server has run so far (INFO commandstats). */
async function redisCommands(url: string): Promise<CommandCounts> {
  const client = new RedisClient(url, { autoReconnect: false })
  try {
    const info = String(await client.send('INFO', ['commandstats']))
    const counts = { all: 0, scripts: 0 }
    for (const [, command, calls] of info.matchAll(/^cmdstat_([^:|]+)[^:]*:calls=(\d+)/gm)) {
      if (CHATTER.has(command!)) continue
      counts.all += Number(calls)
      if (command === 'evalsha' || command === 'eval') counts.scripts += Number(calls)
    }
    return counts
  } finally {
    client.close()
  }
}

/** The floor under what Redis adds: one round trip (PING) from a Bun client, as the instances use. */
async function redisFloor(ctx: BenchContext, url: string): Promise<Row> {
  const client = new RedisClient(url, { autoReconnect: false })
  try {
    await client.connect()
    const requests = ctx.count(1000, 5000)
    for (let i = 0; i < 200; i++) await client.send('PING', [])
    const rounds: number[][] = []
    for (let round = 0; round < ctx.rounds; round++) {
      const samples: number[] = []
      for (let i = 0; i < requests; i++) {
        const sentAt = performance.now()
        await client.send('PING', [])
        samples.push(performance.now() - sentAt)
      }
      rounds.push(samples)
    }
    return rowOf(
      {
        scenario: 'multi-instance',
        name: 'floor: one Redis round trip (PING) from a Bun client over loopback, no blockgate',
        backend: 'redis-ping',
        target: 'local',
        payload: 'none',
        concurrency: 1,
      },
      rounds,
    )
  } finally {
    client.close()
  }
}
