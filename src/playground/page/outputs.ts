// A run's outputs as a tree: plain values as text, every image as an image, arrays by dtype
// and shape (an image-shaped uint8 array as an image too), detections drawn over the input
// image (boxes, labels, masks).
import { Detections } from '../../../serializers/detections/index.ts'
import { WorkflowImage } from '../../../serializers/image/index.ts'
import { NDArray } from '../../../serializers/ndarray/index.ts'
import { VideoMetadata } from '../../../serializers/video_metadata/index.ts'

const PALETTE = [
  '#e6194b',
  '#3cb44b',
  '#4363d8',
  '#f58231',
  '#911eb4',
  '#42d4f4',
  '#f032e6',
  '#bfef45',
]

/** The input image, for detections to be drawn over. */
export interface Backdrop {
  bitmap: ImageBitmap | null
}

export function renderOutputs(
  host: HTMLElement,
  outputs: Record<string, unknown>,
  backdrop: Backdrop,
): void {
  host.replaceChildren(
    ...Object.entries(outputs).map(([key, value]) => node(key, value, backdrop, 0)),
  )
}

function node(key: string, value: unknown, backdrop: Backdrop, depth: number): HTMLElement {
  const label = document.createElement('span')
  label.className = 'key'
  label.textContent = `${key}: `
  const line = document.createElement('div')
  line.dataset.output = key
  if (value instanceof WorkflowImage) {
    line.append(label, kind(`image ${imageSize(value)}`), imageOf(value))
  } else if (value instanceof Detections) {
    line.append(
      label,
      kind(`detections (${value.xyxy.shape[0]})`),
      detectionsCanvas(value, backdrop),
    )
  } else if (value instanceof NDArray) {
    line.append(label, kind(`ndarray ${value.dtype} [${value.shape.join(', ')}]`))
    if (looksLikeImage(value)) line.append(pixelsCanvas(value))
    else line.append(text(preview(value)))
  } else if (value instanceof VideoMetadata) {
    line.append(label, kind('video_metadata'), text(JSON.stringify(value, plain, 1)))
  } else if (
    value !== null &&
    typeof value === 'object' &&
    !(value instanceof Uint8Array) &&
    depth < 8
  ) {
    const entries = Array.isArray(value)
      ? value.map((v, i) => [String(i), v] as const)
      : Object.entries(value)
    const details = document.createElement('details')
    details.open = depth < 2
    const summary = document.createElement('summary')
    summary.append(
      label,
      kind(Array.isArray(value) ? `list (${entries.length})` : `map (${entries.length})`),
    )
    details.append(summary, ...entries.map(([k, v]) => node(k, v, backdrop, depth + 1)))
    line.append(details)
  } else {
    line.append(label, text(JSON.stringify(value, plain) ?? String(value)))
  }
  return line
}

const kind = (words: string) => {
  const span = document.createElement('span')
  span.className = 'kind'
  span.textContent = `${words} `
  return span
}

const text = (words: string) => {
  const span = document.createElement('code')
  span.textContent = words
  return span
}

/** JSON.stringify's replacer for what JSON has no word for. */
function plain(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`
  return value
}

function imageSize(image: WorkflowImage): string {
  if (image.pixels) return `${image.pixels.shape[1]}×${image.pixels.shape[0]}`
  return image.encoded ? `(${image.encoded.format})` : ''
}

function imageOf(image: WorkflowImage): HTMLElement {
  if (image.pixels) return pixelsCanvas(image.pixels)
  const img = document.createElement('img')
  const encoded = image.encoded!
  img.src = URL.createObjectURL(
    new Blob([encoded.bytes as Uint8Array<ArrayBuffer>], { type: `image/${encoded.format}` }),
  )
  img.alt = 'an image output'
  return img
}

const looksLikeImage = (array: NDArray) =>
  array.dtype === 'uint8' &&
  (array.shape.length === 2 || (array.shape.length === 3 && [1, 3, 4].includes(array.shape[2]!)))

/** H×W gray, H×W×3 BGR or H×W×4 BGRA (cv2's order) as an RGBA canvas, pixel for pixel. */
function pixelsCanvas(pixels: NDArray): HTMLCanvasElement {
  const [height = 0, width = 0, channels = 1] = pixels.shape
  const canvas = document.createElement('canvas')
  canvas.width = width
  canvas.height = height
  const rgba = new ImageData(width, height)
  const source = pixels.bytes
  for (let i = 0; i < width * height; i++) {
    const at = i * channels
    const [b, g, r] =
      channels >= 3
        ? [source[at]!, source[at + 1]!, source[at + 2]!]
        : [source[at]!, source[at]!, source[at]!]
    rgba.data.set([r, g, b, channels === 4 ? source[at + 3]! : 255], i * 4)
  }
  canvas.getContext('2d')!.putImageData(rgba, 0, 0)
  return canvas
}

function preview(array: NDArray): string {
  const values =
    array.strings ?? Array.from(array.data as ArrayLike<number | bigint>, (v) => String(v))
  const shown = values.slice(0, 24).join(', ')
  return `[${shown}${values.length > 24 ? `, … ${values.length - 24} more` : ''}]`
}

function detectionsCanvas(detections: Detections, backdrop: Backdrop): HTMLCanvasElement {
  const count = detections.xyxy.shape[0] ?? 0
  const boxes = Array.from(detections.xyxy.data as ArrayLike<number>, Number)
  const mask = detections.mask
  const canvas = document.createElement('canvas')
  canvas.width = backdrop.bitmap?.width ?? mask?.shape[2] ?? Math.ceil(Math.max(64, ...boxes) + 8)
  canvas.height = backdrop.bitmap?.height ?? mask?.shape[1] ?? Math.ceil(Math.max(64, ...boxes) + 8)
  const g = canvas.getContext('2d')!
  if (backdrop.bitmap) g.drawImage(backdrop.bitmap, 0, 0)
  else {
    g.fillStyle = '#eceef3'
    g.fillRect(0, 0, canvas.width, canvas.height)
  }
  if (mask) drawMasks(g, mask.shape, mask.bits)
  const names = labelsOf(detections)
  const confidence = detections.confidence
    ? Array.from(detections.confidence.data as ArrayLike<number>, Number)
    : []
  g.lineWidth = Math.max(2, canvas.width / 320)
  g.font = `${Math.max(12, Math.round(canvas.width / 45))}px system-ui, sans-serif`
  for (let i = 0; i < count; i++) {
    const [x1, y1, x2, y2] = boxes.slice(i * 4, i * 4 + 4) as [number, number, number, number]
    const color = PALETTE[i % PALETTE.length]!
    g.strokeStyle = color
    g.strokeRect(x1, y1, x2 - x1, y2 - y1)
    const label = `${names[i] ?? i}${confidence[i] === undefined ? '' : ` ${confidence[i]!.toFixed(2)}`}`
    const width = g.measureText(label).width + 8
    const height = Number.parseInt(g.font, 10) + 4
    g.fillStyle = color
    g.fillRect(x1, Math.max(0, y1 - height), width, height)
    g.fillStyle = '#fff'
    g.fillText(label, x1 + 4, Math.max(height - 4, y1 - 4))
  }
  return canvas
}

/** Each detection's label: its class name when the data has one, else its class id. */
function labelsOf(detections: Detections): string[] {
  const names = detections.data.class_name
  if (names instanceof NDArray && names.strings) return [...names.strings]
  if (Array.isArray(names)) return names.map(String)
  if (detections.classId)
    return Array.from(detections.classId.data as ArrayLike<number | bigint>, String)
  return []
}

/** Masks packed as numpy.packbits(bitorder="little") over N×H×W, tinted per detection. */
function drawMasks(
  g: CanvasRenderingContext2D,
  shape: readonly [number, number, number],
  bits: Uint8Array,
): void {
  const [count, height, width] = shape
  const layer = g.getImageData(
    0,
    0,
    Math.min(width, g.canvas.width),
    Math.min(height, g.canvas.height),
  )
  for (let n = 0; n < count; n++) {
    const color = PALETTE[n % PALETTE.length]!
    const [r, gr, b] = [1, 3, 5].map((at) => Number.parseInt(color.slice(at, at + 2), 16)) as [
      number,
      number,
      number,
    ]
    for (let y = 0; y < layer.height; y++)
      for (let x = 0; x < layer.width; x++) {
        const bit = (n * height + y) * width + x
        if (((bits[bit >> 3]! >> (bit & 7)) & 1) === 0) continue
        const at = (y * layer.width + x) * 4
        layer.data[at] = (layer.data[at]! + r) >> 1
        layer.data[at + 1] = (layer.data[at + 1]! + gr) >> 1
        layer.data[at + 2] = (layer.data[at + 2]! + b) >> 1
      }
  }
  g.putImageData(layer, 0, 0)
}
