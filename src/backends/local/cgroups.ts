// A cgroup per worker, so that its limits hold for the worker as a whole: memory, process
// count and CPU for the worker and every process its block starts (rlimits are per
// process: 63 children of a 2 GiB worker could hold 126 GiB). Sibling groups get equal CPU
// weight, so a worker running 60 busy processes gets no more CPU than one running one.
//
// The server (root) writes the limits and moves each worker in before it runs any user
// code; cgroupfs is not mounted in the sandbox, so no block can change them. Both cgroup
// v1 (a hierarchy per controller) and v2 (one unified hierarchy) are handled. Where
// neither is writable (not root, no delegation) the pool runs on rlimits alone and says
// so in /readyz.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isRunning } from './leftovers.ts'

export interface CgroupLimits {
  memoryBytes: number
  processes: number
  /** CPU time per wall-clock second, in cores. */
  cpuCores: number
}

type Controller = 'memory' | 'pids' | 'cpu'
const CONTROLLERS: Controller[] = ['memory', 'pids', 'cpu']
const CPU_PERIOD_US = 100_000
/** Groups of stopped instances are named blockgate-<pid>; a start removes those whose pid is gone. */
const GROUP_PREFIX = 'blockgate-'

interface Hierarchy {
  /** Where this server's own group sits, for v1 per controller; one entry for v2. */
  base: string
  controllers: Controller[]
}

/** The cgroups of one pool: a parent group for this server and a child group per worker. */
export class WorkerCgroups {
  private constructor(
    readonly version: 1 | 2,
    private readonly hierarchies: Hierarchy[],
    private readonly parentName: string,
    private readonly limits: CgroupLimits,
  ) {}

  /** The cgroups this machine lets the server manage, or why not. */
  static open(limits: CgroupLimits): WorkerCgroups | { unavailable: string } {
    if (process.getuid?.() !== 0) return { unavailable: 'the server is not root' }
    let hierarchies: Hierarchy[]
    let version: 1 | 2
    try {
      ;({ version, hierarchies } = findHierarchies(
        readFileSync('/proc/self/mounts', 'utf8'),
        readFileSync('/proc/self/cgroup', 'utf8'),
      ))
    } catch (error) {
      return { unavailable: (error as Error).message }
    }
    const groups = new WorkerCgroups(version, hierarchies, `${GROUP_PREFIX}${process.pid}`, limits)
    try {
      groups.sweep()
      groups.makeParent()
    } catch (error) {
      return { unavailable: `cgroups are not writable here: ${(error as Error).message}` }
    }
    return groups
  }

  describe(): string {
    return `cgroup v${this.version} per worker (memory ${this.limits.memoryBytes} bytes, ${this.limits.processes} processes, ${this.limits.cpuCores} CPU)`
  }

  /**
   * Moves `pid` into a worker's group, made with its limits on first use. The move is off
   * the event loop: on cgroup v1 the first one after a quiet spell waits for an RCU grace
   * period in the kernel (5–10 ms here), which a synchronous write would stall every other
   * request for.
   */
  async place(workerId: string, pid: number): Promise<void> {
    for (const { base, controllers } of this.hierarchies) {
      const dir = join(base, this.parentName, workerId)
      if (existsSync(dir)) continue
      mkdirSync(dir, { recursive: true })
      for (const controller of controllers) this.writeLimits(dir, controller)
    }
    for (const { base } of this.hierarchies)
      await writeFile(join(base, this.parentName, workerId, 'cgroup.procs'), String(pid))
  }

  /** Removes a worker's group once its processes are gone (retrying while they exit). */
  async remove(workerId: string): Promise<void> {
    for (const { base } of this.hierarchies)
      await removeWhenEmpty(join(base, this.parentName, workerId))
  }

  /** Removes this server's parent group (after every worker is gone). */
  async close(): Promise<void> {
    for (const { base } of this.hierarchies) {
      const parent = join(base, this.parentName)
      if (!existsSync(parent)) continue
      for (const child of subgroups(parent)) await removeWhenEmpty(join(parent, child))
      await removeWhenEmpty(parent)
    }
  }

  private makeParent(): void {
    if (this.version === 2) {
      const root = this.hierarchies[0]!.base
      // Controllers reach a child only when its parent enables them for its subtree.
      writeFileSync(join(root, 'cgroup.subtree_control'), CONTROLLERS.map((c) => `+${c}`).join(' '))
      const parent = join(root, this.parentName)
      mkdirSync(parent, { recursive: true })
      writeFileSync(
        join(parent, 'cgroup.subtree_control'),
        CONTROLLERS.map((c) => `+${c}`).join(' '),
      )
      return
    }
    for (const { base } of this.hierarchies)
      mkdirSync(join(base, this.parentName), { recursive: true })
  }

  private writeLimits(dir: string, controller: Controller): void {
    const { memoryBytes, processes, cpuCores } = this.limits
    const quota = String(Math.round(cpuCores * CPU_PERIOD_US))
    if (this.version === 2) {
      if (controller === 'memory') {
        writeFileSync(join(dir, 'memory.max'), String(memoryBytes))
        if (existsSync(join(dir, 'memory.swap.max')))
          writeFileSync(join(dir, 'memory.swap.max'), '0')
      } else if (controller === 'pids') writeFileSync(join(dir, 'pids.max'), String(processes))
      else writeFileSync(join(dir, 'cpu.max'), `${quota} ${CPU_PERIOD_US}`)
      return
    }
    if (controller === 'memory') {
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(memoryBytes))
      // With swap accounting, memory + swap gets the same bound (no swapping out of it).
      if (existsSync(join(dir, 'memory.memsw.limit_in_bytes')))
        writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(memoryBytes))
    } else if (controller === 'pids') writeFileSync(join(dir, 'pids.max'), String(processes))
    else {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US))
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), quota)
    }
  }

  /** Removes the groups that stopped instances left (their pid is gone and so are their processes). */
  private sweep(): void {
    for (const { base } of this.hierarchies) {
      for (const name of subgroups(base)) {
        if (!name.startsWith(GROUP_PREFIX) || name === this.parentName) continue
        const pid = Number(name.slice(GROUP_PREFIX.length))
        if (!Number.isInteger(pid) || isRunning(pid)) continue
        const parent = join(base, name)
        try {
          for (const child of subgroups(parent)) rmdirSync(join(parent, child))
          rmdirSync(parent)
        } catch {
          // still holds processes: left for the machine's owner to look at
        }
      }
    }
  }
}

/** Where memory, pids and cpu are mounted, and this process's own group within them. */
function findHierarchies(
  mounts: string,
  selfCgroup: string,
): { version: 1 | 2; hierarchies: Hierarchy[] } {
  const ownPath = new Map<string, string>() // v1 controller (or '' for v2) → own group path
  for (const line of selfCgroup.trim().split('\n')) {
    const [, controllers = '', path = '/'] = line.split(':')
    for (const controller of controllers.split(',')) ownPath.set(controller, path)
  }
  const v1: Hierarchy[] = []
  let unified: string | null = null
  for (const line of mounts.trim().split('\n')) {
    const [, target = '', type = '', options = ''] = line.split(' ')
    if (type === 'cgroup2') unified = target
    if (type !== 'cgroup') continue
    const controllers = CONTROLLERS.filter((c) => options.split(',').includes(c))
    if (controllers.length === 0) continue
    v1.push({ base: join(target, ownPath.get(controllers[0]!) ?? '/'), controllers })
  }
  const covered = new Set(v1.flatMap((h) => h.controllers))
  if (CONTROLLERS.every((c) => covered.has(c))) return { version: 1, hierarchies: v1 }
  if (unified) {
    const available = readFileSync(join(unified, 'cgroup.controllers'), 'utf8').trim().split(/\s+/)
    const missing = CONTROLLERS.filter((c) => !available.includes(c))
    if (missing.length === 0)
      return { version: 2, hierarchies: [{ base: unified, controllers: CONTROLLERS }] }
    throw new Error(`the cgroup v2 hierarchy lacks the ${missing.join(', ')} controller(s)`)
  }
  throw new Error('no cgroup hierarchy with the memory, pids and cpu controllers is mounted')
}

function subgroups(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
  } catch {
    return []
  }
}

async function removeWhenEmpty(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirSync(dir)
      return
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (code !== 'EBUSY') throw error
      await Bun.sleep(20) // its last processes are still exiting
    }
  }
}
