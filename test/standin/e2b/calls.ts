// What the control plane was asked, for tests to assert on: how often each route was
// called, and each create request's body exactly as it arrived (e.g. that no env vars or
// secrets were sent).

export class CallLog {
  /** Route ("POST /v2/sandboxes") → number of calls, whatever their answer. */
  readonly byRoute: Record<string, number> = {}
  /** The body of each POST /v2/sandboxes, parsed JSON as received (null if it had none). */
  readonly creates: unknown[] = []
  /** When each create arrived (performance.now() ms), in order: how creates were spaced. */
  readonly createTimes: number[] = []
  /** Requests to sandboxes through the edge, by port ("8000", "49983", …): not control-plane calls. */
  readonly dataPlane: Record<string, number> = {}
  /** How the edge found each request's sandbox: by its Host (`<port>-<id>.<domain>`, as the SDK's getHost builds it) or by the E2b-Sandbox-* headers; `refused` for a 400. */
  readonly routedBy: Record<'host' | 'headers' | 'refused', number> = {
    host: 0,
    headers: 0,
    refused: 0,
  }

  countData(port: number, routedBy: 'host' | 'headers' | 'refused'): void {
    this.routedBy[routedBy]++
    if (routedBy !== 'refused') this.dataPlane[port] = (this.dataPlane[port] ?? 0) + 1
  }

  /** Requests to sandboxes so far, all ports. */
  dataTotal(): number {
    return Object.values(this.dataPlane).reduce((sum, n) => sum + n, 0)
  }

  count(route: string): void {
    this.byRoute[route] = (this.byRoute[route] ?? 0) + 1
  }

  /** Calls to one route so far (0 if none). */
  of(route: string): number {
    return this.byRoute[route] ?? 0
  }

  /** Calls to every route so far. */
  total(): number {
    return Object.values(this.byRoute).reduce((sum, n) => sum + n, 0)
  }

  reset(): void {
    for (const route of Object.keys(this.byRoute)) delete this.byRoute[route]
    for (const port of Object.keys(this.dataPlane)) delete this.dataPlane[port]
    this.routedBy.host = this.routedBy.headers = this.routedBy.refused = 0
    this.creates.length = 0
    this.createTimes.length = 0
  }
}
