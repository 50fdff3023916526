// The last few KB a sandbox process wrote to stderr: drained so the process never blocks
// on a full pipe, and kept to explain why it failed.
const KEEP_BYTES = 4096

export class StderrTail {
  private tail = ''

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.drain(stream)
  }

  text(): string {
    return this.tail.trim()
  }

  private async drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of stream) this.tail = (this.tail + decoder.decode(chunk, { stream: true })).slice(-KEEP_BYTES)
    } catch {
      // the process was killed mid-write
    }
  }
}
