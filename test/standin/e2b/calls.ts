// What the control plane was asked, for tests to assert on: how often each route was
// called, and each create request's body exactly as it arrived (e.g. that no env vars or
// secrets were sent).

export class CallLog {
  /** Route ("POST /v2/sandboxes") → number of calls, whatever their answer. */
  readonly byRoute: Record<string, number> = {}
  /** The body of each POST /v2/sandboxes, parsed JSON as received (null if it had none). */
  readonly creates: unknown[] = []
  /** Requests to sandboxes through the edge, by port ("8000", "49983", …): not control-plane calls. */
  readonly dataPlane: Record<string, number> = {}

  countData(port: number): void {
    this.dataPlane[port] = (this.dataPlane[port] ?? 0) + 1
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
    this.creates.length = 0
  }
}
