// An OTLP/HTTP receiver that accepts and drops what it gets, in a process of its own (as a
// collector would be): the tracing-on runs export to it. Prints its URL, then, on SIGTERM,
// how many requests and bytes it received.
let requests = 0
let bytes = 0
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(request) {
    requests++
    bytes += (await request.arrayBuffer()).byteLength
    return new Response(new Uint8Array(0), {
      headers: { 'content-type': 'application/x-protobuf' },
    })
  },
})
console.log(`http://127.0.0.1:${server.port}`)
process.on('SIGTERM', () => {
  console.log(JSON.stringify({ requests, bytes }))
  process.exit(0)
})
