// Block code the webexec endpoint has seen, per (workspace, code hash). Inference sends a
// block's code once, then only its hash; a hash found here runs without the code, a hash
// not found is answered UnknownCodeHash and Inference resends the code.
import { createHash } from 'node:crypto'

export interface CachedCode {
  code: string
  imports: string[]
}

/** Inference's own hash of a block's code: md5 over the code, a newline, the import lines. */
export function inferenceCodeHash(code: string, imports: readonly string[]): string {
  return createHash('md5')
    .update(`${code}\n${imports.join('\n')}`, 'utf8')
    .digest('hex')
}

/**
 * What one entry counts against the cache beyond its code: the map slots, key and object that
 * hold it. Without it a flood of one-byte blocks would hold millions of entries "within" the size.
 */
export const ENTRY_OVERHEAD_BYTES = 256

/**
 * No entry takes more than 1/MIN_SHARES of the cache: one workspace's giant block is run but not
 * kept, rather than kept and then pushed out (with its own smaller entries) by the next insert
 * anywhere. Real block code is kilobytes; at the default 32 MiB this still admits 8 MiB.
 */
export const MIN_SHARES = 4

/** The bytes an entry counts: its code and import lines (UTF-8) and ENTRY_OVERHEAD_BYTES. */
export function entryBytes(code: CachedCode): number {
  return (
    ENTRY_OVERHEAD_BYTES +
    Buffer.byteLength(code.code) +
    code.imports.reduce((sum, line) => sum + Buffer.byteLength(line), 0)
  )
}

interface Entry extends CachedCode {
  hash: string
  bytes: number
  older: Entry | null
  newer: Entry | null
}

/** One workspace's entries, in a list from least to most recently used, and the bytes they hold. */
class Share {
  // A list of our own, not Map order: Bun's Map iterator walks every slot deleted at the front,
  // so finding the oldest entry that way costs tens of microseconds once thousands have gone.
  readonly entries = new Map<string, Entry>()
  oldest: Entry | null = null
  newest: Entry | null = null
  bytes = 0
  /** Where this share sits in the cache's heap. */
  at = -1
  constructor(readonly workspace: string) {}

  append(entry: Entry): void {
    entry.older = this.newest
    entry.newer = null
    if (this.newest) this.newest.newer = entry
    else this.oldest = entry
    this.newest = entry
  }

  unlink(entry: Entry): void {
    if (entry.older) entry.older.newer = entry.newer
    else this.oldest = entry.newer
    if (entry.newer) entry.newer.older = entry.older
    else this.newest = entry.older
    entry.older = entry.newer = null
  }
}

/**
 * Fair per workspace: once the code held passes `maxBytes`, the least recently used entry of
 * the workspace holding the most bytes goes. The largest holder is always over the fair share
 * (maxBytes / workspaces holding entries), so a workspace within its share never loses an entry
 * to another workspace's inserts. Recall is two map look-ups and a relink; remember is O(log workspaces)
 * per entry added or dropped.
 */
export class CodeCache {
  // A workspace's code is found only under that workspace: a hash alone never reaches another tenant's block.
  readonly #shares = new Map<string, Share>()
  // Max-heap of the shares by bytes: the largest holder is #heap[0].
  readonly #heap: Share[] = []
  #bytes = 0
  /** Entries over this many bytes (see MIN_SHARES) are not kept. */
  readonly maxEntryBytes: number

  constructor(readonly maxBytes: number) {
    this.maxEntryBytes = Math.floor(maxBytes / MIN_SHARES)
  }

  /** The bytes held, as entryBytes counts them. */
  get bytes(): number {
    return this.#bytes
  }

  /** The bytes `workspace` holds. */
  bytesOf(workspace: string): number {
    return this.#shares.get(workspace)?.bytes ?? 0
  }

  /** How many workspaces hold entries. */
  get workspaces(): number {
    return this.#shares.size
  }

  remember(workspace: string, hash: string, code: CachedCode): void {
    const existing = this.#shares.get(workspace)
    if (existing) this.#drop(existing, hash)
    const bytes = entryBytes(code)
    if (bytes > this.maxEntryBytes) return
    const share = this.#shares.get(workspace) ?? this.#open(workspace)
    const entry: Entry = {
      code: code.code,
      imports: code.imports,
      hash,
      bytes,
      older: null,
      newer: null,
    }
    share.entries.set(hash, entry)
    share.append(entry)
    this.#resize(share, bytes)
    while (this.#bytes > this.maxBytes) {
      const largest = this.#heap[0]!
      this.#drop(largest, largest.oldest!.hash)
    }
  }

  recall(workspace: string, hash: string): CachedCode | undefined {
    const share = this.#shares.get(workspace)
    const entry = share?.entries.get(hash)
    if (!share || !entry) return undefined
    share.unlink(entry)
    share.append(entry)
    return { code: entry.code, imports: entry.imports }
  }

  #open(workspace: string): Share {
    const share = new Share(workspace)
    this.#shares.set(workspace, share)
    share.at = this.#heap.push(share) - 1
    return share
  }

  #drop(share: Share, hash: string): void {
    const entry = share.entries.get(hash)
    if (!entry) return
    share.entries.delete(hash)
    share.unlink(entry)
    this.#resize(share, -entry.bytes)
    if (share.entries.size > 0) return
    // An empty share leaves, so the fair share counts only workspaces that hold code.
    this.#shares.delete(share.workspace)
    const last = this.#heap.pop()!
    if (last !== share) {
      this.#heap[share.at] = last
      last.at = share.at
      this.#siftUp(last)
      this.#siftDown(last)
    }
    share.at = -1
  }

  #resize(share: Share, delta: number): void {
    share.bytes += delta
    this.#bytes += delta
    if (delta > 0) this.#siftUp(share)
    else this.#siftDown(share)
  }

  #siftUp(share: Share): void {
    const heap = this.#heap
    while (share.at > 0) {
      const parent = heap[(share.at - 1) >> 1]!
      if (parent.bytes >= share.bytes) return
      this.#swap(share, parent)
    }
  }

  #siftDown(share: Share): void {
    const heap = this.#heap
    for (;;) {
      const left = 2 * share.at + 1
      let larger = left < heap.length && heap[left]!.bytes > share.bytes ? heap[left]! : share
      const right = left + 1
      if (right < heap.length && heap[right]!.bytes > larger.bytes) larger = heap[right]!
      if (larger === share) return
      this.#swap(share, larger)
    }
  }

  #swap(a: Share, b: Share): void {
    const at = a.at
    a.at = b.at
    b.at = at
    this.#heap[a.at] = a
    this.#heap[b.at] = b
  }
}
