// The real processes the multi-instance tests stand on: a redis-server that can go away and
// come back on the same port, and HAProxy with the shipped deploy/haproxy.cfg keeping each
// API key on one instance.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { RedisClient } from 'bun'
import { Hono } from 'hono'
import { type Haproxy, startHaproxy } from '../support/haproxy.ts'
import { type RedisServer, startRedis } from '../support/redis-server.ts'

describe('redis-server', () => {
  let redis: RedisServer
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(() => redis?.stop())

  const roundTrip = async (key: string, value: string) => {
    const client = new RedisClient(redis.url, { autoReconnect: false })
    try {
      await client.set(key, value)
      return await client.get(key)
    } finally {
      client.close()
    }
  }

  test('answers SET and GET', async () => {
    expect(await roundTrip('greeting', 'hello')).toBe('hello')
  })

  test('comes back empty on the same port after a stop, and after a crash', async () => {
    const firstPid = redis.pid()
    await redis.stop()
    await expect(roundTrip('greeting', 'hello')).rejects.toThrow()

    await redis.restart()
    expect(redis.pid()).not.toBe(firstPid)
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`)
    const client = new RedisClient(redis.url, { autoReconnect: false })
    expect(await client.get('greeting')).toBeNull() // nothing was kept on disk
    client.close()
    expect(await roundTrip('greeting', 'again')).toBe('again')

    await redis.kill9()
    await redis.restart()
    expect(await roundTrip('greeting', 'once more')).toBe('once more')
  })

  test('a paused server hangs its clients until it resumes', async () => {
    const client = new RedisClient(redis.url, { autoReconnect: false })
    await client.connect()
    redis.pause()
    const answer = client.ping()
    const early = await Promise.race([answer, Bun.sleep(300).then(() => 'no answer yet')])
    redis.resume()
    expect(early).toBe('no answer yet')
    expect(await answer).toBe('PONG')
    client.close()
  })
})

describe('haproxy with deploy/haproxy.cfg', () => {
  // Hono on Bun, as blockgate: it routes by the request's Host, so health checks must send one.
  const instances = ['a', 'b'].map((name) => {
    const healthChecks: number[] = []
    const app = new Hono()
    app.get('/healthz', (c) => c.text('ok'))
    for (const route of ['/v1/run', '/webexec']) app.post(route, (c) => c.text(name))
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(request) {
        const response = await app.fetch(request)
        if (request.url.endsWith('/healthz')) healthChecks.push(response.status)
        return response
      },
    })
    return { server, healthChecks }
  })
  let haproxy: Haproxy
  beforeAll(async () => {
    haproxy = await startHaproxy({
      servers: instances.map(({ server }) => `127.0.0.1:${server.port}`),
    })
  })
  afterAll(async () => {
    await haproxy?.stop()
    for (const { server } of instances) await server.stop(true)
  })

  const landsOn = async (path: string, headers: Record<string, string>) => {
    const response = await fetch(`${haproxy.url}${path}`, { method: 'POST', headers })
    expect(response.status).toBe(200)
    return response.text()
  }

  test('sends every request of an API key to the same instance', async () => {
    const seen = new Set<string>()
    for (let i = 0; i < 20; i++) seen.add(await landsOn('/v1/run', { authorization: 'Bearer k1' }))
    expect(seen.size).toBe(1)
  })

  test('spreads different API keys over the instances', async () => {
    const seen = new Set<string>()
    for (let i = 0; i < 20; i++)
      seen.add(await landsOn('/v1/run', { authorization: `Bearer key-${i}` }))
    expect([...seen].sort()).toEqual(['a', 'b'])
  })

  test('sends every /webexec call with the same Modal-Key to the same instance', async () => {
    const modal = (key: string) => ({ 'modal-key': key, 'modal-secret': 'secret' })
    const seen = new Set<string>()
    for (let i = 0; i < 20; i++) seen.add(await landsOn('/webexec', modal('m1')))
    expect(seen.size).toBe(1)

    const spread = new Set<string>()
    for (let i = 0; i < 20; i++) spread.add(await landsOn('/webexec', modal(`modal-${i}`)))
    expect([...spread].sort()).toEqual(['a', 'b'])

    // With both, blockgate takes Authorization's key, and so does the balancer.
    const bearerLandsOn = await landsOn('/v1/run', { authorization: 'Bearer k1' })
    let elsewhere = 0
    while ((await landsOn('/webexec', modal(`modal-${elsewhere}`))) === bearerLandsOn) elsewhere++
    expect(
      await landsOn('/webexec', { ...modal(`modal-${elsewhere}`), authorization: 'Bearer k1' }),
    ).toBe(bearerLandsOn)
  })

  test('health-checks every instance on /healthz, and the instances answer 200', async () => {
    const deadline = performance.now() + 10_000
    while (instances.some(({ healthChecks }) => healthChecks.length === 0)) {
      if (performance.now() > deadline) throw new Error(`no health checks: ${haproxy.log()}`)
      await Bun.sleep(100)
    }
    for (const { healthChecks } of instances) expect(new Set(healthChecks)).toEqual(new Set([200]))
  })
})
