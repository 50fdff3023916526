// The bytes of websocket messages this process holds before they are answered (chunks being
// put together, messages waiting their turn), counted per key and in all: one tenant opening
// many connections and sending large messages on each cannot take the server's memory.
// A frame that would go past a bound is refused (the connection gets 1011); bytes are given
// back when their message is handled or their connection closes.

export class ByteBudget {
  private total = 0
  private readonly byHolder = new Map<string, number>()

  /**
   * From the largest message (the body limit): a key holds four such at once, all keys
   * sixteen (256 MiB and 1 GiB with the default 64 MiB).
   */
  static forMessagesOf(maxMessageBytes: number): ByteBudget {
    return new ByteBudget(16 * maxMessageBytes, 4 * maxMessageBytes)
  }

  constructor(
    private readonly maxBytes: number,
    private readonly maxPerHolder: number,
  ) {}

  /** Takes `bytes` for `holder`, or says which bound it would pass (nothing is taken then). */
  take(holder: string, bytes: number): string | null {
    const held = this.byHolder.get(holder) ?? 0
    if (held + bytes > this.maxPerHolder)
      return `${holder} already holds ${held} bytes of unanswered messages, its limit is ${this.maxPerHolder}`
    if (this.total + bytes > this.maxBytes)
      return `the server holds ${this.total} bytes of unanswered messages, its limit is ${this.maxBytes}`
    this.byHolder.set(holder, held + bytes)
    this.total += bytes
    return null
  }

  give(holder: string, bytes: number): void {
    if (bytes <= 0) return
    const left = (this.byHolder.get(holder) ?? 0) - bytes
    if (left > 0) this.byHolder.set(holder, left)
    else this.byHolder.delete(holder)
    this.total = Math.max(0, this.total - bytes)
  }

  get held(): number {
    return this.total
  }
}
