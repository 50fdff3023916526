// The last few KB a process wrote to stderr: read as it comes, so the process never blocks on
// a full pipe, and kept to explain why it failed (its last line goes into error messages).
// The zygote's stderr is read this way, a worker's that runs as a process of its own, and the
// offline E2B stand-in's sandbox processes.
const KEEP_CHARS = 4096
const LINE_CHARS = 300

export class StderrTail {
  private tail = ''

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.drain(stream)
  }

  /** All that is kept, trimmed. */
  text(): string {
    return this.tail.trim()
  }

  /** The last line written, if any. */
  lastLine(): string | null {
    return lastLineOf(this.tail)
  }

  private async drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of stream)
        this.tail = (this.tail + decoder.decode(chunk, { stream: true })).slice(-KEEP_CHARS)
    } catch {
      // the process was killed mid-write
    }
  }
}

/** The last non-empty line of `text`, cut to 300 characters; null when there is none. */
export function lastLineOf(text: string): string | null {
  return text.trim().split('\n').filter(Boolean).at(-1)?.slice(0, LINE_CHARS) ?? null
}
