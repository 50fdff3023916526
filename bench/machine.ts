// What the figures were measured on: absolute times hold for this machine only, and the
// load average says how busy it was (a shared VM's neighbours show up here).
import { cpus, loadavg, release, totalmem, platform } from 'node:os'
import { resolve } from 'node:path'

export interface Machine {
  cpu: string
  cores: number
  memory_gb: number
  os: string
  bun: string
  python: string
  /** 1-minute load average when the bench started and when it ended. */
  load_at_start: number
  load_at_end: number | null
  commit: string
  /** True when the work tree had changes the commit does not hold. */
  dirty: boolean
}

const PYTHON = resolve(import.meta.dir, '../.venv/bin/python')

function output(cmd: string[]): string {
  const result = Bun.spawnSync({ cmd, stderr: 'ignore' })
  return result.exitCode === 0 ? result.stdout.toString().trim() : 'unknown'
}

export function describeMachine(): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: navigator.hardwareConcurrency,
    memory_gb: +(totalmem() / 2 ** 30).toFixed(1),
    os: `${platform()} ${release()}`,
    bun: Bun.version,
    python: output([PYTHON, '-c', 'import platform; print(platform.python_version())']),
    load_at_start: +loadavg()[0]!.toFixed(2),
    load_at_end: null,
    commit: output(['git', '-C', resolve(import.meta.dir, '..'), 'rev-parse', '--short', 'HEAD']),
    dirty:
      output([
        'git',
        '-C',
        resolve(import.meta.dir, '..'),
        'status',
        '--porcelain',
        '--untracked-files=no',
      ]) !== '',
  }
}

export function loadNow(): number {
  return +loadavg()[0]!.toFixed(2)
}
