// The playground page: editors, inputs, a run through the TypeScript client (CBOR), and the
// result drawn (outputs, waterfall, stdout/stderr, the failing line marked, the trace).
import { AuthError, BlockError, BlockgateError, Client } from '../../../clients/ts/index.ts'
import { WorkflowImage } from '../../../serializers/image/index.ts'
import { PythonEditor } from './editor.ts'
import { EXAMPLES } from './examples.ts'
import type { PlaygroundSettings } from './html.ts'
import { renderOutputs, type Backdrop } from './outputs.ts'
import { drawWaterfall } from './waterfall.ts'

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T
const settings = JSON.parse($('settings').textContent!) as PlaygroundSettings
const KEY_STORE = 'blockgate-playground-key' // sessionStorage: this tab only

const runEditor = new PythonEditor($('run-editor'), '')
const initEditor = new PythonEditor($('init-editor'), '')
const backdrop: Backdrop = { bitmap: null }
let imageBytes: Uint8Array | null = null

// --- header ------------------------------------------------------------------------------

const examples = $<HTMLSelectElement>('example')
for (const [i, example] of EXAMPLES.entries()) examples.add(new Option(example.name, String(i)))
examples.addEventListener('change', () => loadExample(Number(examples.value)))

const backends = $<HTMLSelectElement>('backend')
for (const name of settings.backends)
  backends.add(new Option(name, name, false, name === settings.defaultBackend))

const key = $<HTMLInputElement>('key')
if (settings.keysRequired) {
  $('key-label').classList.remove('hidden')
  key.value = sessionStorage.getItem(KEY_STORE) ?? ''
  key.addEventListener('change', () => sessionStorage.setItem(KEY_STORE, key.value))
}

function loadExample(index: number): void {
  const example = EXAMPLES[index]!
  runEditor.text = example.run
  initEditor.text = example.init
  $<HTMLTextAreaElement>('inputs').value = JSON.stringify(example.inputs, null, 1)
  $<HTMLTextAreaElement>('detections').value = example.detections
    ? JSON.stringify(example.detections, null, 1)
    : ''
}
loadExample(0)

// --- the image input ---------------------------------------------------------------------

async function takeImage(file: File): Promise<void> {
  imageBytes = new Uint8Array(await file.arrayBuffer())
  backdrop.bitmap = await createImageBitmap(file)
  const preview = $<HTMLImageElement>('image-preview')
  preview.src = URL.createObjectURL(file)
  preview.classList.remove('hidden')
}
$<HTMLInputElement>('image-file').addEventListener('change', (event) => {
  const file = (event.target as HTMLInputElement).files?.[0]
  if (file) void takeImage(file)
})
const drop = $('drop')
drop.addEventListener('dragover', (event) => {
  event.preventDefault()
  drop.classList.add('over')
})
drop.addEventListener('dragleave', () => drop.classList.remove('over'))
drop.addEventListener('drop', (event) => {
  event.preventDefault()
  drop.classList.remove('over')
  const file = event.dataTransfer?.files[0]
  if (file) void takeImage(file)
})

// --- a run -------------------------------------------------------------------------------

/** The run function's parameters, so an image or detections input is sent only to a block that takes it. */
function parameters(code: string): { names: Set<string>; any: boolean } {
  const match = /def\s+run\s*\(([^)]*)\)/.exec(code)
  const names = (match?.[1] ?? '').split(',').map((p) => p.split(/[:=]/)[0]!.trim())
  return { names: new Set(names), any: names.some((n) => n.startsWith('**')) }
}

function inputs(): Record<string, unknown> {
  const text = $<HTMLTextAreaElement>('inputs').value.trim()
  const values = text ? (JSON.parse(text) as Record<string, unknown>) : {}
  const takes = parameters(runEditor.text)
  const wanted = (name: string) => name !== '' && (takes.any || takes.names.has(name))
  const imageName = $<HTMLInputElement>('image-name').value.trim()
  if (imageBytes && wanted(imageName)) values[imageName] = WorkflowImage.fromEncoded(imageBytes)
  const detectionsText = $<HTMLTextAreaElement>('detections').value.trim()
  const detectionsName = $<HTMLInputElement>('detections-name').value.trim()
  if (detectionsText && wanted(detectionsName))
    values[detectionsName] = { _type: 'sv_detections', ...(JSON.parse(detectionsText) as object) }
  return values
}

function show(status: string, failed: boolean): void {
  $('status').textContent = status
  $('status').classList.toggle('failed', failed)
}

async function run(): Promise<void> {
  const button = $<HTMLButtonElement>('run')
  button.disabled = true
  runEditor.markError(null)
  initEditor.markError(null)
  for (const id of ['error', 'stdout', 'stderr', 'outputs', 'waterfall', 'trace'])
    $(id).replaceChildren()
  $('error').classList.add('hidden')
  try {
    if (settings.keysRequired && !key.value) {
      show('This server needs an API key: type it in the header (it stays in this tab).', true)
      key.focus()
      return
    }
    let values: Record<string, unknown>
    try {
      values = inputs()
    } catch (error) {
      show(`Inputs are not valid JSON: ${(error as Error).message}`, true)
      return
    }
    show('Running…', false)
    const client = new Client({ url: location.origin, apiKey: key.value || undefined, retries: 1 })
    const init = initEditor.text.trim()
    const result = await client.run(runEditor.text, values, {
      initCode: init ? initEditor.text : undefined,
      workspace: $<HTMLInputElement>('workspace').value.trim() || undefined,
      backend: backends.value as 'local' | 'e2b',
    })
    show(`Done in ${result.timingsMs.total.toFixed(1)} ms on ${result.backend}`, false)
    const badge = document.createElement('span')
    badge.className = 'badge'
    badge.id = 'cold-start'
    badge.textContent = result.coldStart ? 'cold start' : 'warm'
    $('status').append(badge)
    drawWaterfall($('waterfall'), result.timingsMs)
    renderOutputs($('outputs'), result.outputs, backdrop)
    $('stdout').textContent = result.stdout
    $('stderr').textContent = result.stderr
    showTrace(result.traceId)
  } catch (error) {
    showFailure(error)
  } finally {
    button.disabled = false
  }
}

function showFailure(error: unknown): void {
  if (!(error instanceof BlockgateError)) {
    show(`The request failed: ${(error as Error).message}`, true)
    return
  }
  show(`${error.type} (${error.status})`, true)
  const box = $('error')
  box.classList.remove('hidden')
  box.textContent =
    error instanceof BlockError && error.traceback ? error.traceback : error.body.message
  if (error instanceof AuthError) key.focus()
  if (error instanceof BlockError) {
    $('stdout').textContent = error.stdout
    $('stderr').textContent = error.stderr
    const editor = error.body.source === 'init_function_code' ? initEditor : runEditor
    if (error.line !== null && (error.body.source ?? 'run_function_code') !== 'imports')
      editor.markError(error.line)
  }
}

function showTrace(traceId: string | null): void {
  if (!settings.tracing || !traceId) return
  const host = $('trace')
  host.append('trace ')
  if (settings.traceUrlTemplate) {
    const link = document.createElement('a')
    link.href = settings.traceUrlTemplate.replaceAll('{trace_id}', traceId)
    link.target = '_blank'
    link.rel = 'noopener'
    link.textContent = traceId
    host.append(link)
  } else host.append(traceId)
}

$('run').addEventListener('click', () => void run())
document.addEventListener('keydown', (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === 'Enter') void run()
})
