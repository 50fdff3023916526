// The live sandboxes, and their clocks: a sandbox whose end time passes is killed (or
// paused, if it asked for autoPause) and leaves the list at once.
import type { StandinSandbox } from './sandbox.ts'

export class SandboxRegistry {
  private readonly sandboxes = new Map<string, StandinSandbox>()
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>()
  /** Sandboxes still booting: stop() must wait for them, or their processes would outlive it. */
  private readonly booting = new Set<Promise<unknown>>()

  get(id: string): StandinSandbox | undefined {
    return this.sandboxes.get(id)
  }

  all(): StandinSandbox[] {
    return [...this.sandboxes.values()]
  }

  countRunning(): number {
    return this.all().filter((sandbox) => sandbox.state === 'running').length
  }

  /** Counts a boot in progress against the concurrency cap and lets stop() wait for it. */
  trackBoot<T>(boot: Promise<T>): Promise<T> {
    this.booting.add(boot)
    const forget = () => this.booting.delete(boot)
    boot.then(forget, forget)
    return boot
  }

  get bootingCount(): number {
    return this.booting.size
  }

  add(sandbox: StandinSandbox): void {
    this.sandboxes.set(sandbox.id, sandbox)
    this.schedule(sandbox)
  }

  /** Moves the sandbox's end to `seconds` from now. */
  setTimeout(sandbox: StandinSandbox, seconds: number): void {
    sandbox.endAt = new Date(Date.now() + seconds * 1000)
    this.schedule(sandbox)
  }

  async kill(sandbox: StandinSandbox): Promise<void> {
    this.unschedule(sandbox)
    this.sandboxes.delete(sandbox.id)
    await sandbox.kill()
  }

  pause(sandbox: StandinSandbox): Promise<void> {
    this.unschedule(sandbox) // a paused sandbox does not expire
    return sandbox.pause()
  }

  resume(sandbox: StandinSandbox, seconds: number): void {
    sandbox.resume()
    this.setTimeout(sandbox, seconds)
  }

  async killAll(): Promise<void> {
    await Promise.allSettled([...this.booting])
    await Promise.all(this.all().map((sandbox) => this.kill(sandbox)))
  }

  private schedule(sandbox: StandinSandbox): void {
    this.unschedule(sandbox)
    const delay = Math.max(0, sandbox.endAt.getTime() - Date.now())
    this.timers.set(
      sandbox.id,
      setTimeout(() => {
        this.timers.delete(sandbox.id)
        if (sandbox.spec.autoPause) void this.pause(sandbox)
        else void this.kill(sandbox)
      }, delay),
    )
  }

  private unschedule(sandbox: StandinSandbox): void {
    clearTimeout(this.timers.get(sandbox.id))
    this.timers.delete(sandbox.id)
  }
}
